using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Presence;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary><c>presence.query {room}</c> answers <c>presence.state</c>: who is in the room, over all workers.</summary>
internal sealed partial class PresenceQueryHandler(PresenceTracker presence, ILogger<PresenceQueryHandler> logger) : IFrameHandler
{
    public string Type => MessageTypes.PresenceQuery;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (RoomFrames.RequireRoom(session, frame) is not { } room)
        {
            return;
        }

        if (!session.Identity.MayJoin(room))
        {
            session.SendError(ErrorCodes.Forbidden, $"the token does not grant '{room}'", frame.Id, room);
            return;
        }

        if (!presence.IsEnabled(room))
        {
            session.SendError(ErrorCodes.PresenceDisabled, $"presence is not enabled for '{room}' (Bridge:Presence:Rooms)", frame.Id, room);
            return;
        }

        var reference = frame.Id;
        await session.StartBackgroundAsync(async ct =>
        {
            try
            {
                var members = await presence.QueryAsync(room, ct);
                session.Send(ControlFrames.PresenceState(room, reference, members));
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
            catch (Exception ex)
            {
                LogQueryFailed(ex, room);
                session.SendError(ErrorCodes.Unavailable, $"presence of '{room}' could not be read now; retry", reference, room);
            }
        }, cancellationToken);
    }

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Presence query of {Room} failed")]
    private partial void LogQueryFailed(Exception exception, string room);
}
