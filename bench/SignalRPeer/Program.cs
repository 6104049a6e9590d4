using Microsoft.AspNetCore.SignalR;
using StackExchange.Redis;

// A minimal SignalR hub doing Bridge's fan-out: groups are rooms, Publish sends to a group through the Redis
// backplane. Usage: SignalRPeer --urls http://127.0.0.1:PORT --Redis 127.0.0.1:PORT
var builder = WebApplication.CreateSlimBuilder(args);
builder.Logging.SetMinimumLevel(LogLevel.Warning);
var redis = builder.Configuration["Redis"] ?? throw new InvalidOperationException("--Redis host:port is required");
builder.Services
    .AddSignalR(o =>
    {
        // Idle-connection benchmarks hold 20,000 silent clients for longer than the 30 s default.
        o.ClientTimeoutInterval = TimeSpan.FromMinutes(10);
        o.EnableDetailedErrors = true;
    })
    .AddMessagePackProtocol()
    .AddStackExchangeRedis(redis, o => o.Configuration.ChannelPrefix = RedisChannel.Literal("bench"));

var app = builder.Build();
app.MapGet("/healthz", () => "ok");
app.MapHub<RoomHub>("/hub");
await app.RunAsync();

internal sealed class RoomHub : Hub
{
    public Task Join(string[] rooms) => Task.WhenAll(rooms.Select(r => Groups.AddToGroupAsync(Context.ConnectionId, r)));

    public Task Publish(string room, byte[] body) => Clients.Group(room).SendAsync("m", body);
}
