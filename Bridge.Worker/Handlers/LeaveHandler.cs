using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary><c>room.leave {room}</c>: no message of the room is sent after <c>room.left</c>.</summary>
internal sealed class LeaveHandler : IFrameHandler
{
    public string Type => MessageTypes.RoomLeave;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (RoomFrames.RequireRoom(session, frame) is not { } name)
        {
            return;
        }

        if (!await session.Rooms.LeaveAsync(name))
        {
            session.SendError(ErrorCodes.NotJoined, $"not in room '{name}'", frame.Id);
            return;
        }

        session.Send(ControlFrames.RoomLeft(name));
    }
}
