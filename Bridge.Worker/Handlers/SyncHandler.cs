using System.Text.Json;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary>
/// <c>room.sync {room, payload: {limit}}</c> answers <c>room.state</c> with the room's latest messages (default 1:
/// the "current value", one direct get without a consumer) and the position to resume live from.
/// </summary>
internal sealed partial class SyncHandler(RoomHistory history, ILogger<SyncHandler> logger) : IFrameHandler
{
    /// <summary>Most messages one sync returns.</summary>
    public const int MaxLimit = ProtocolLimits.MaxSyncLimit;

    public string Type => MessageTypes.RoomSync;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (RoomFrames.RequireRoom(session, frame) is not { } room)
        {
            return;
        }

        // Reading a room's history needs the same grant as joining it.
        if (!session.Identity.MayJoin(room))
        {
            session.SendError(ErrorCodes.Forbidden, $"the token does not grant reading '{room}'", frame.Id, room);
            return;
        }

        var limit = 1;
        using (var args = PayloadArgs.Parse(frame))
        {
            if (args is not null && args.RootElement.TryGetProperty("limit", out var l) && l.ValueKind != JsonValueKind.Null)
            {
                if (l.ValueKind != JsonValueKind.Number || !l.TryGetInt32(out limit) || limit is < 1 or > MaxLimit)
                {
                    session.SendError(ErrorCodes.InvalidArgument, $"limit must be an integer from 1 to {MaxLimit}", frame.Id, room);
                    return;
                }
            }
        }

        var reference = frame.Id;
        await session.StartBackgroundAsync(async ct =>
        {
            try
            {
                var messages = await history.ReadLatestAsync(room, limit, ct);
                var seq = messages.Count > 0 ? messages[^1].Seq : 0;
                session.Send(ControlFrames.RoomState(room, seq, messages));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                LogSyncFailed(ex, session.ConnectionId, room);
                session.SendError(ErrorCodes.Unavailable, $"room '{room}' could not be read now; retry", reference, room);
            }
        }, cancellationToken);
    }

    [LoggerMessage(EventId = 2301, Level = LogLevel.Warning, Message = "Sync of {Room} for connection {ConnectionId} failed")]
    private partial void LogSyncFailed(Exception exception, string connectionId, string room);
}
