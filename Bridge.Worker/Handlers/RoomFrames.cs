using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

internal static class RoomFrames
{
    /// <summary>Checks the frame names a valid room; otherwise answers the error and returns null.</summary>
    public static string? RequireRoom(ClientSession session, InboundFrame frame)
    {
        if (frame.Room is null)
        {
            session.SendError(ErrorCodes.MissingField, "field 'room' is required", frame.Id);
            return null;
        }

        if (!RoomName.IsValid(frame.Room))
        {
            session.SendError(
                ErrorCodes.InvalidRoom,
                $"room must be 1-{RoomName.MaxLength} characters of dot-separated [A-Za-z0-9_-] tokens",
                frame.Id);
            return null;
        }

        return frame.Room;
    }
}
