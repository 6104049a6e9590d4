using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary><c>room.leave {room}</c> (a room or a pattern joined): no message of it is sent after <c>room.left</c>.</summary>
internal sealed class LeaveHandler : IFrameHandler
{
    public string Type => MessageTypes.RoomLeave;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        // A room or a pattern, as joined (how broad a pattern is matters only when joining it).
        if (RoomFrames.CheckJoinName(frame.Room, minPrefixTokens: null) is { } refused)
        {
            session.SendError(refused.Code, refused.Message, frame.Id);
            return;
        }

        var name = frame.Room!;

        if (!await session.Rooms.LeaveAsync(name))
        {
            session.SendError(ErrorCodes.NotJoined, $"not in room '{name}'", frame.Id, name);
            return;
        }

        session.Send(ControlFrames.RoomLeft(name));
    }
}
