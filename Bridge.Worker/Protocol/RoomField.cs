using Bridge.Contracts;

namespace Bridge.Worker.Protocol;

/// <summary>The <c>room</c> field's rule and its one wording, for every transport and the backend API.</summary>
internal static class RoomField
{
    /// <summary>The one wording of a refused room name.</summary>
    public static readonly string InvalidMessage =
        $"room must be 1-{RoomName.MaxLength} characters of dot-separated [A-Za-z0-9_-] tokens";

    /// <summary>Why a room field is refused (code and message), or null when it names a valid room.</summary>
    public static (string Code, string Message)? Check(string? room) =>
        room is null ? (ErrorCodes.MissingField, "field 'room' is required")
        : !RoomName.IsValid(room) ? (ErrorCodes.InvalidRoom, InvalidMessage)
        : null;
}
