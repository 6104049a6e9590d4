using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;
using Microsoft.Extensions.DependencyInjection;

namespace Bridge.LoadTests.Peers;

/// <summary>
/// ASP.NET Core SignalR with the Redis backplane (bench/SignalRPeer, its own process) and redis-server: groups
/// are rooms. Clients use the MessagePack hub protocol over WebSockets (negotiation skipped); the publisher is a
/// hub client calling <c>Publish(room, body)</c>, which sends to the group through Redis.
/// </summary>
internal sealed class SignalRTarget(string configuration) : IFanoutTarget
{
    private ChildProcess? _redis;
    private ChildProcess? _peer;
    private Uri? _url;

    public string Name => "SignalR + Redis (msgpack)";

    public string GatewayProcess => "signalr";

    public IdleEndpoint IdleEndpoint => new(new Uri($"ws://{_url!.Authority}/hub"), null, Encoding.UTF8.GetBytes("{\"protocol\":\"messagepack\",\"version\":1}\u001e"), true);

    public async Task StartAsync(ScenarioContext context)
    {
        context.Status = "starting redis-server and the SignalR peer";
        var (redis, port) = await ServiceProcess.StartRedisAsync(context.Token);
        _redis = redis;
        (_peer, _url) = await ServiceProcess.StartSignalRAsync(port, configuration, context.Token);
        context.Watch("signalr", _peer.Pid);
        context.Watch("redis", _redis.Pid);
        context.Status = "";
    }

    private HubConnection Create() => new HubConnectionBuilder()
        .WithUrl(new Uri(_url!, "/hub"), HttpTransportType.WebSockets, o => o.SkipNegotiation = true)
        .AddMessagePackProtocol()
        .Build();

    public async Task<IAsyncDisposable> SubscribeAsync(IReadOnlyList<int> rooms, ScenarioStats stats, CancellationToken cancellationToken)
    {
        var connection = Create();
        // Handlers of one connection run one at a time, in order: one tracker per connection is safe.
        var tracker = new DeliveryTracker(stats);
        connection.On<byte[]>("m", body => tracker.OnJsonBody(body));
        connection.Closed += ex =>
        {
            if (ex is not null)
            {
                stats.Error("closed: " + ex.GetType().Name);
            }

            return Task.CompletedTask;
        };
        await connection.StartAsync(cancellationToken);
        await connection.InvokeAsync("Join", rooms.Select(Rooms.Name).ToArray(), cancellationToken);
        return connection;
    }

    public async Task<IRoomPublisher> CreatePublisherAsync(ScenarioStats stats, CancellationToken cancellationToken)
    {
        var connection = Create();
        await connection.StartAsync(cancellationToken);
        return new HubPublisher(connection);
    }

    public async ValueTask DisposeAsync()
    {
        if (_peer is not null)
        {
            await _peer.DisposeAsync();
        }

        if (_redis is not null)
        {
            await _redis.DisposeAsync();
        }
    }

    private sealed class HubPublisher(HubConnection connection) : IRoomPublisher
    {
        public ValueTask PublishAsync(int room, byte[] body, CancellationToken cancellationToken) =>
            new(connection.SendAsync("Publish", Rooms.Name(room), body, cancellationToken));

        // The hub runs one client's invocations in order: when this one returns, every earlier Publish has run.
        public Task FlushAsync(CancellationToken cancellationToken) => connection.InvokeAsync("Join", Array.Empty<string>(), cancellationToken);

        public ValueTask DisposeAsync() => connection.DisposeAsync();
    }
}
