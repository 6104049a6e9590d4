using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Handlers;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Bridge.Worker.Security;
using Bridge.Worker.Transports.Http;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Transports.WebSockets;

/// <summary><c>GET /ws</c>: negotiates the subprotocol, accepts the socket and runs the connection until it ends.</summary>
internal sealed partial class WebSocketEndpoint(
    FrameDispatcher dispatcher,
    ConnectionTracker tracker,
    ConnectionAdmission admission,
    IOptions<ConnectionOptions> options,
    IOptions<WorkerOptions> worker,
    TimeProvider time,
    ILogger<WebSocketConnection> logger)
{
    public const string Path = "/ws";

    public async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync("WebSocket upgrade expected on /ws", context.RequestAborted);
            return;
        }

        var codec = SelectCodec(context.WebSockets.WebSocketRequestedProtocols, out var subprotocol);
        if (codec is null)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            await context.Response.WriteAsync(
                $"unsupported subprotocol; offer {Subprotocols.Json} or {Subprotocols.MessagePack}", context.RequestAborted);
            return;
        }

        // Origin, token and connection limits before the upgrade: a refused client gets an HTTP answer and no socket.
        var (admitted, refusal) = await admission.AdmitAsync(context);
        if (admitted is null)
        {
            await refusal!.ExecuteAsync(context);
            return;
        }

        await using var _ = admitted;
        var o = options.Value;
        using var socket = await context.WebSockets.AcceptWebSocketAsync(new WebSocketAcceptContext
        {
            SubProtocol = subprotocol,
            KeepAliveInterval = o.HeartbeatInterval,
            KeepAliveTimeout = o.HeartbeatTimeout,
        });

        var session = new ClientSession(
            ConnectionTracker.NewConnectionId(),
            admitted.Identity,
            codec,
            new OutboundQueue(o.SendQueueCapacity, o.SendQueueMaxBytes),
            o.MaxConcurrentRequests,
            maxPublishesInFlight: o.MaxPublishesInFlight);
        using var scope = logger.BeginScope(new ConnectionLogScope(session.ConnectionId, session.User, session.Transport));
        admission.WatchExpiry(session);
        tracker.Add(session);
        try
        {
            session.Send(ControlFrames.Welcome(session.ConnectionId, worker.Value.Id, o.HeartbeatInterval, session.User));
            var connection = new WebSocketConnection(socket, session, dispatcher, o, tracker.Metrics, time, logger);
            await connection.RunAsync(context.RequestAborted);
        }
        finally
        {
            await session.LeaveAllRoomsAsync();
            tracker.Remove(session);
        }
    }

    /// <summary>The first subprotocol the client offers that the gateway speaks; no offer means JSON; offers of neither are refused.</summary>
    private static IFrameCodec? SelectCodec(IList<string> requested, out string? subprotocol)
    {
        subprotocol = null;
        if (requested.Count == 0)
        {
            return JsonFrameCodec.Instance;
        }

        foreach (var candidate in requested)
        {
            IFrameCodec? codec = candidate switch
            {
                Subprotocols.Json => JsonFrameCodec.Instance,
                Subprotocols.MessagePack => MessagePackFrameCodec.Instance,
                _ => null,
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
