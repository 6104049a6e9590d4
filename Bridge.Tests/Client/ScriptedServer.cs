using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using MessagePack;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bridge.Tests.Client;

/// <summary>
/// A WebSocket "worker" on loopback Kestrel that plays a script to the .NET client: for frames and timings the real
/// worker never produces (a repeated or older seq, seqs at the top of the unsigned range, an answer queued behind a
/// backlog, a server that goes silent). Each connection runs <c>script(socket, n)</c>, n counting from 1.
/// </summary>
internal sealed class ScriptedServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _connections;

    private ScriptedServer(WebApplication app) => _app = app;

    public Uri Url { get; private set; } = null!;

    /// <summary>Connections accepted so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public static async Task<ScriptedServer> StartAsync(Func<ScriptedSocket, int, Task> script)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var server = new ScriptedServer(app);
        app.UseWebSockets();
        app.Map("/ws", async (HttpContext context) =>
        {
            // The plain subprotocols only, as a worker older than the batch ones: the client falls back to the one it offered second.
            var protocol = context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault(p => p is Subprotocols.Json or Subprotocols.MessagePack) ?? Subprotocols.Json;
            using var socket = await context.WebSockets.AcceptWebSocketAsync(protocol);
            var n = Interlocked.Increment(ref server._connections);
            await script(new ScriptedSocket(socket, protocol == Subprotocols.MessagePack), n);
        });
        await app.StartAsync();
        server.Url = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}

/// <summary>One accepted connection of a <see cref="ScriptedServer"/>, in the subprotocol the client asked for.</summary>
internal sealed class ScriptedSocket(WebSocket socket, bool msgpack)
{
    public bool IsMsgPack { get; } = msgpack;

    /// <summary>The welcome the worker sends first.</summary>
    public Task WelcomeAsync() => SendAsync(new()
    {
        ["type"] = MessageTypes.Welcome,
        ["payload"] = new Dictionary<string, object?> { ["connectionId"] = "c", ["serverId"] = "scripted", ["heartbeatMs"] = 30000, ["protocol"] = 1, ["user"] = "anonymous" },
    });

    /// <summary>Sends JSON text as it is (the JSON subprotocol only).</summary>
    public Task SendTextAsync(string json)
    {
        Assert.False(IsMsgPack, "raw JSON text is for the JSON subprotocol");
        return socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, CancellationToken.None);
    }

    /// <summary>Sends an envelope in the connection's format. Values: strings, integers (ulong keeps the top of the range), bools, decimals, nested dictionaries.</summary>
    public Task SendAsync(Dictionary<string, object?> envelope) => IsMsgPack
        ? socket.SendAsync(MessagePackSerializer.Serialize(envelope), WebSocketMessageType.Binary, true, CancellationToken.None)
        : socket.SendAsync(JsonSerializer.SerializeToUtf8Bytes(envelope), WebSocketMessageType.Text, true, CancellationToken.None);

    /// <summary>Sends bytes as they are, as a binary message (the MessagePack subprotocol only).</summary>
    public Task SendBytesAsync(byte[] bytes)
    {
        Assert.True(IsMsgPack, "raw bytes are for the MessagePack subprotocol");
        return socket.SendAsync(bytes, WebSocketMessageType.Binary, true, CancellationToken.None);
    }

    public Task CloseAsync(int code, string reason) => socket.CloseOutputAsync((WebSocketCloseStatus)code, reason, CancellationToken.None);

    /// <summary>The next frame from the client as JSON, or null when it closed.</summary>
    public async Task<JsonObject?> ReceiveAsync()
    {
        var buffer = new byte[64 * 1024];
        var count = 0;
        while (true)
        {
            WebSocketReceiveResult result;
            try
            {
                result = await socket.ReceiveAsync(new ArraySegment<byte>(buffer, count, buffer.Length - count), CancellationToken.None);
            }
            catch (WebSocketException)
            {
                return null;
            }

            if (result.MessageType == WebSocketMessageType.Close)
            {
                return null;
            }

            count += result.Count;
            if (result.EndOfMessage)
            {
                return IsMsgPack
                    ? JsonNode.Parse(MessagePackSerializer.ConvertToJson(buffer.AsMemory(0, count)))!.AsObject()
                    : JsonNode.Parse(buffer.AsSpan(0, count))!.AsObject();
            }
        }
    }

    /// <summary>Reads (and drops) the client's frames until it closes.</summary>
    public async Task DrainAsync()
    {
        while (await ReceiveAsync() is not null)
        {
        }
    }
}
