using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

internal static class RoomFrames
{
    /// <summary>The one wording of a refused room name, for every transport (<see cref="RoomField"/>).</summary>
    public static string InvalidRoomMessage => RoomField.InvalidMessage;

    /// <summary>Why a room field is refused (code and message), or null when it names a valid room.</summary>
    public static (string Code, string Message)? CheckRoom(string? room) => RoomField.Check(room);

    /// <summary>Checks the frame names a valid room; otherwise answers the error and returns null.</summary>
    public static string? RequireRoom(ClientSession session, InboundFrame frame)
    {
        if (CheckRoom(frame.Room) is { } refused)
        {
            session.SendError(refused.Code, refused.Message, frame.Id);
            return null;
        }

        return frame.Room;
    }
}
