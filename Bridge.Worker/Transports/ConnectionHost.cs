using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Limits;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Bridge.Worker.Transports.Http;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Transports;

/// <summary>
/// What one transport supplies for one connection: its checks of the admitted request, its codec and send queue, and
/// its reading and writing. The rest of the connection's life is <see cref="ConnectionHost"/>'s.
/// </summary>
internal interface IConnectionTransport
{
    TransportKind Kind { get; }

    IFrameCodec Codec { get; }

    /// <summary>The heartbeat interval <c>welcome</c> announces; null: no <c>welcome</c> (a long-poll is one request).</summary>
    TimeSpan? WelcomeHeartbeat { get; }

    /// <summary>Checks the admitted request (rooms, cursor) and opens the response or socket; false when refused (the refusal is written).</summary>
    ValueTask<bool> AcceptAsync(HttpContext context, UserIdentity identity);

    /// <summary>The connection's bounded send queue.</summary>
    OutboundQueue CreateQueue();

    /// <summary>Pumps the session until the connection ends: reads frames or starts its joins, writes the send queue to the wire.</summary>
    Task RunAsync(HttpContext context, ClientSession session);

    /// <summary>The last step, once the session has left its rooms (a long-poll's answer); not taken when <see cref="RunAsync"/> threw.</summary>
    Task CompleteAsync(HttpContext context, ClientSession session);
}

/// <summary>
/// Runs the life of every client connection, whatever its transport: admission (origin, token, connection limits),
/// the session and its bounded send queue, the log scope, the token's expiry, the tracker (shutdown drain, stall
/// sweep, the backend API's disconnects), <c>welcome</c>, the transport's pump, then leaving every room and
/// untracking. A transport supplies only what is its own (<see cref="IConnectionTransport"/>).
/// </summary>
internal sealed class ConnectionHost(
    ConnectionAdmission admission,
    ConnectionTracker tracker,
    RoomReader reader,
    IOptions<ConnectionOptions> options,
    IOptions<WorkerOptions> worker,
    MessageRateLimiter frameRate,
    ILogger<ConnectionHost> logger)
{
    public async Task RunAsync(HttpContext context, IConnectionTransport transport)
    {
        var (admitted, refusal) = await admission.AdmitAsync(context);
        if (admitted is null)
        {
            await refusal!.ExecuteAsync(context);
            return;
        }

        await using var _ = admitted;
        if (!await transport.AcceptAsync(context, admitted.Identity))
        {
            return;
        }

        var o = options.Value;
        var session = new ClientSession(
            ConnectionTracker.NewConnectionId(),
            admitted.Identity,
            transport.Codec,
            transport.CreateQueue(),
            reader,
            o.MaxConcurrentRequests,
            transport.Kind,
            o.MaxPublishesInFlight);
        using var scope = logger.BeginScope(new ConnectionLogScope(session.ConnectionId, session.User, session.Transport));
        var staysOpen = session.Transport.StaysOpen();
        // Only a socket that carries this stream alone: a long-poll's keep-alive connection serves other requests, and
        // an HTTP/2 connection other streams.
        if (staysOpen && o.ConflatedSendBufferBytes > 0 && HttpProtocol.IsHttp11(context.Request.Protocol) && context.Features.Get<IConnectionSocketFeature>()?.Socket is { } socket)
        {
            session.SetConflatedSendBuffer(socket, o.ConflatedSendBufferBytes);
        }

        // Closed with 4001 when the token runs out (a stream's client reconnects with a fresh token), and a long-poll
        // waiting then answers with what it has: nothing published after the token's expiry reaches its holder.
        admission.WatchExpiry(session);
        if (staysOpen)
        {
            tracker.Add(session);
        }

        try
        {
            if (transport.WelcomeHeartbeat is { } heartbeat)
            {
                // Only a WebSocket's frames pass the frame rate limit (FrameDispatcher); SSE clients publish over HTTP.
                (int, int)? rate = transport.Kind == TransportKind.WebSocket ? (frameRate.FramesPerSecond, frameRate.Burst) : null;
                session.Send(ControlFrames.Welcome(
                    session.ConnectionId, worker.Value.Id, heartbeat, session.User, o.MaxFrameBytes, o.MaxRoomsPerConnection, rate));
            }

            await transport.RunAsync(context, session);
        }
        finally
        {
            session.RequestClose(CloseCodes.Normal, "closed");
            await session.LeaveAllRoomsAsync();
            if (staysOpen)
            {
                tracker.Remove(session);
            }
        }

        await transport.CompleteAsync(context, session);
    }
}
