using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text.Json;
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
/// A WebSocket relay on loopback Kestrel between a client and a real worker: each connection it accepts is relayed,
/// frame for frame (same subprotocol, same query string), to a connection of its own to the worker, and the frames the
/// client sent are recorded per connection. <see cref="Drop"/> ends the relayed connections as a lost network would
/// (no close handshake); while <see cref="Refusing"/> is set, new connections are refused with 503. The frames the
/// worker sent are recorded too (<see cref="Received"/>). <see cref="Worker"/> may be changed: new connections go to
/// the new worker, as behind a load balancer.
/// </summary>
internal sealed class FrameRelay : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentDictionary<int, ConcurrentQueue<SentFrame>> _sent = new();
    private readonly ConcurrentDictionary<int, ConcurrentQueue<JsonElement>> _received = new();
    private readonly ConcurrentDictionary<int, CancellationTokenSource> _live = new();
    private int _connections;

    private FrameRelay(WebApplication app, Uri worker)
    {
        _app = app;
        Worker = worker;
    }

    /// <summary>The worker's WebSocket URL new connections are relayed to.</summary>
    public Uri Worker { get; set; }

    public Uri Url { get; private set; } = null!;

    /// <summary>New connections get 503 while set.</summary>
    public bool Refusing { get; set; }

    /// <summary>Connections relayed so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    public static async Task<FrameRelay> StartAsync(Uri workerWebSocketUrl)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var relay = new FrameRelay(app, workerWebSocketUrl);
        app.UseWebSockets();
        app.Map("/ws", relay.RelayAsync);
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());
        relay.Url = new Uri($"ws://{address.Authority}/ws");
        return relay;
    }

    /// <summary>The frames the client sent on connection <paramref name="n"/> (from 1), as JSON (MessagePack frames converted).</summary>
    public IReadOnlyList<JsonElement> Sent(int n) => _sent.TryGetValue(n, out var frames) ? [.. frames.Select(f => f.Frame)] : [];

    /// <summary>The frames the worker sent on connection <paramref name="n"/> (from 1), as JSON.</summary>
    public IReadOnlyList<JsonElement> Received(int n) => _received.TryGetValue(n, out var frames) ? [.. frames] : [];

    /// <summary>The frames of <see cref="Sent"/> with their size on the wire (bytes of the WebSocket message).</summary>
    public IReadOnlyList<SentFrame> SentWithSizes(int n) => _sent.TryGetValue(n, out var frames) ? [.. frames] : [];

    /// <summary>Ends every relayed connection now, without a close handshake.</summary>
    public void Drop()
    {
        foreach (var cts in _live.Values)
        {
            cts.Cancel();
        }
    }

    private async Task RelayAsync(HttpContext context)
    {
        if (Refusing || !context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            return;
        }

        // The plain subprotocols only, as a worker older than the batch ones: the client falls back to the one it offered second.
        var protocol = context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault(p => p is Subprotocols.Json or Subprotocols.MessagePack) ?? Subprotocols.Json;
        using var upstream = new ClientWebSocket();
        upstream.Options.AddSubProtocol(protocol);
        upstream.Options.CollectHttpResponseDetails = true;
        try
        {
            await upstream.ConnectAsync(new Uri(Worker, context.Request.QueryString.Value ?? ""), context.RequestAborted);
        }
        catch (WebSocketException) when (upstream.HttpStatusCode != 0)
        {
            // The worker refused the handshake (401 for an expired token...): the client gets the same answer.
            context.Response.StatusCode = (int)upstream.HttpStatusCode;
            return;
        }

        using var downstream = await context.WebSockets.AcceptWebSocketAsync(protocol);
        var n = Interlocked.Increment(ref _connections);
        var sent = _sent.GetOrAdd(n, _ => new ConcurrentQueue<SentFrame>());
        var received = _received.GetOrAdd(n, _ => new ConcurrentQueue<JsonElement>());
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        _live[n] = cts;
        try
        {
            var up = PumpAsync(downstream, upstream, frame => sent.Enqueue(new SentFrame(ToJson(frame, protocol), frame.Length)), cts.Token);
            var down = PumpAsync(upstream, downstream, frame => received.Enqueue(ToJson(frame, protocol)), cts.Token);
            await Task.WhenAny(up, down);
        }
        finally
        {
            _live.TryRemove(n, out _);
            downstream.Abort();
            upstream.Abort();
        }
    }

    private static async Task PumpAsync(WebSocket from, WebSocket to, Action<byte[]> record, CancellationToken ct)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                using var message = new MemoryStream();
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await from.ReceiveAsync(buffer.AsMemory(), ct);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return;
                    }

                    message.Write(buffer, 0, result.Count);
                }
                while (!result.EndOfMessage);

                var frame = message.ToArray();
                record(frame);
                await to.SendAsync(frame, result.MessageType, endOfMessage: true, ct);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException)
        {
        }
    }

    private static JsonElement ToJson(byte[] frame, string protocol)
    {
        var json = protocol == Subprotocols.MessagePack ? MessagePackSerializer.ConvertToJson(frame) : System.Text.Encoding.UTF8.GetString(frame);
        using var document = JsonDocument.Parse(json);
        return document.RootElement.Clone();
    }

    public async ValueTask DisposeAsync()
    {
        Drop();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(cts.Token);
        await _app.DisposeAsync();
    }
}

/// <summary>A frame a client sent through a <see cref="FrameRelay"/>: as JSON, and its size on the wire.</summary>
internal readonly record struct SentFrame(JsonElement Frame, int Bytes);
