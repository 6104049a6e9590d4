using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;

namespace Bridge.Worker.Handlers;

/// <summary><c>room.leave {room}</c>: no message of the room is sent after <c>room.left</c>.</summary>
internal sealed class LeaveHandler(RoomRegistry rooms) : IFrameHandler
{
    public string Type => MessageTypes.RoomLeave;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (RoomFrames.RequireRoom(session, frame) is not { } name)
        {
            return;
        }

        if (!session.Rooms.Remove(name, out var membership))
        {
            session.SendError(ErrorCodes.NotJoined, $"not in room '{name}'", frame.Id);
            return;
        }

        membership.Close();
        if (membership.Room is { } room)
        {
            // Otherwise the join is still in flight and leaves the room itself when it sees the membership closed.
            await rooms.LeaveAsync(room, membership);
        }
        session.Send(ControlFrames.RoomLeft(name));
    }
}
