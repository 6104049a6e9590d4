using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Handlers;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Bridge.Worker.Transports.Http;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Transports.WebSockets;

/// <summary>
/// <c>GET /ws</c>: negotiates the subprotocol, then <see cref="ConnectionHost"/> admits the request, and the socket
/// is accepted and pumped (<see cref="WebSocketConnection"/>) until it ends.
/// </summary>
internal sealed class WebSocketEndpoint(
    ConnectionHost host,
    FrameDispatcher dispatcher,
    BridgeMetrics metrics,
    IOptions<ConnectionOptions> options,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<WebSocketConnection> logger)
{
    public const string Path = "/ws";

    // Not async: the host's task is returned as is, so a connection's life holds no frame of this method (an idle
    // connection's memory, docs/benchmarks.md).
    public Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            return RefuseAsync(context, "WebSocket upgrade expected on /ws");
        }

        var codec = SelectCodec(context.WebSockets.WebSocketRequestedProtocols, out var subprotocol, out var batched);
        if (codec is null)
        {
            return RefuseAsync(context,
                $"unsupported subprotocol; offer {Subprotocols.Json}, {Subprotocols.MessagePack}, {Subprotocols.JsonBatch} or {Subprotocols.MessagePackBatch}");
        }

        // Origin, token and connection limits before the upgrade: a refused client gets an HTTP answer and no socket.
        return host.RunAsync(context, new Upgrade(this, codec, subprotocol, batched));
    }

    // As every refused request: 400 with a {code, message} body (docs/protocol.md §1.1).
    private static Task RefuseAsync(HttpContext context, string reason) =>
        HttpErrors.Problem(StatusCodes.Status400BadRequest, ErrorCodes.InvalidArgument, reason).ExecuteAsync(context);

    private ConnectionOptions Options => options.Value;

    /// <summary>
    /// Pumps a socket of the worker's own (the join warm-up's in-memory pair, <see cref="Hosting.JoinWarmUp"/>) with the
    /// loops a client's socket gets, until it ends.
    /// </summary>
    internal Task RunAsync(WebSocket socket, FrameBatchingStream batching, ClientSession session, CancellationToken aborted) =>
        Pump(socket, batching, session, batched: false).RunAsync(aborted);

    private WebSocketConnection Pump(WebSocket socket, FrameBatchingStream? batching, ClientSession session, bool batched) =>
        new(socket, batching, session, batched, dispatcher, Options, metrics, time, logger, lifetime.ApplicationStopping);

    /// <summary>
    /// One upgraded connection: the socket is accepted once admitted, and pumped both ways. Held for the connection's
    /// life, so it keeps only what is its own and reaches the shared services through the endpoint.
    /// </summary>
    private sealed class Upgrade(WebSocketEndpoint endpoint, IFrameCodec codec, string? subprotocol, bool batched) : IConnectionTransport
    {
        private WebSocket? _socket;

        private ConnectionOptions Options => endpoint.Options;

        public TransportKind Kind => TransportKind.WebSocket;

        public IFrameCodec Codec => codec;

        public TimeSpan? WelcomeHeartbeat => Options.HeartbeatInterval;

        public async ValueTask<bool> AcceptAsync(HttpContext context, UserIdentity identity)
        {
            _socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
            {
                SubProtocol = subprotocol,
                KeepAliveInterval = Options.HeartbeatInterval,
                KeepAliveTimeout = Options.HeartbeatTimeout,
            });
            return true;
        }

        public OutboundQueue CreateQueue() => new(Options.SendQueueCapacity, Options.SendQueueMaxBytes, Options.ConflatedQueueFrames, Options.ConflatedQueueBytes);

        // Not async (as HandleAsync): the connection disposes its socket when it ends.
        public Task RunAsync(HttpContext context, ClientSession session)
        {
            // The stream under the socket batches frames (HTTP/1.1 upgrades; none over HTTP/2).
            return endpoint.Pump(_socket!, FrameBatchingStream.Of(context), session, batched).RunAsync(context.RequestAborted);
        }

        public Task CompleteAsync(HttpContext context, ClientSession session) => Task.CompletedTask;
    }

    /// <summary>
    /// The first subprotocol the client offers that the gateway speaks; no offer means JSON; offers of none are refused.
    /// <paramref name="batched"/>: a batch subprotocol, whose server messages are arrays of envelopes
    /// (<see cref="EnvelopeBatch"/>), in the codec's format.
    /// </summary>
    private static IFrameCodec? SelectCodec(IList<string> requested, out string? subprotocol, out bool batched)
    {
        subprotocol = null;
        batched = false;
        if (requested.Count == 0)
        {
            return JsonFrameCodec.Instance;
        }

        foreach (var candidate in requested)
        {
            (IFrameCodec? codec, batched) = candidate switch
            {
                Subprotocols.Json => (JsonFrameCodec.Instance, false),
                Subprotocols.MessagePack => (MessagePackFrameCodec.Instance, false),
                Subprotocols.JsonBatch => (JsonFrameCodec.Instance, true),
                Subprotocols.MessagePackBatch => ((IFrameCodec?)MessagePackFrameCodec.Instance, true),
                _ => (null, false),
            };
            if (codec is not null)
            {
                subprotocol = candidate;
                return codec;
            }
        }

        return null;
    }
}
