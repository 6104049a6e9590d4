using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

internal static class RoomFrames
{
    /// <summary>The one wording of a refused room name, for every transport.</summary>
    public static readonly string InvalidRoomMessage =
        $"room must be 1-{RoomName.MaxLength} characters of dot-separated [A-Za-z0-9_-] tokens";

    /// <summary>Why a room field is refused (code and message), or null when it names a valid room.</summary>
    public static (string Code, string Message)? CheckRoom(string? room) =>
        room is null ? (ErrorCodes.MissingField, "field 'room' is required")
        : !RoomName.IsValid(room) ? (ErrorCodes.InvalidRoom, InvalidRoomMessage)
        : null;

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
