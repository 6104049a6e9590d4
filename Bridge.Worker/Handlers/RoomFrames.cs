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

    /// <summary>The one wording of a malformed room pattern.</summary>
    public static readonly string InvalidPatternMessage =
        "a room pattern is dot-separated [A-Za-z0-9_-] tokens, '*' for exactly one token and a final '>' for one or more";

    /// <summary>
    /// Why the name a join (or leave) gives is refused, or null when it is a valid room or a valid room pattern that is
    /// narrow enough (<paramref name="minPrefixTokens"/> literal tokens before its first wildcard; null: any).
    /// </summary>
    public static (string Code, string Message)? CheckJoinName(string? name, int? minPrefixTokens)
    {
        if (name is null || !RoomName.IsPattern(name))
        {
            return CheckRoom(name);
        }

        if (!Security.RoomPattern.TryParse(name, out var pattern) || !RoomName.IsValidPattern(name))
        {
            return (ErrorCodes.InvalidRoom, InvalidPatternMessage);
        }

        return minPrefixTokens is { } min && pattern!.LiteralPrefixTokens < min
            ? (ErrorCodes.PatternTooBroad, $"a room pattern must start with at least {min} literal token(s) before its first wildcard")
            : null;
    }

    /// <summary>
    /// The room an error refusing <paramref name="name"/> with <paramref name="code"/> (<see cref="CheckJoinName"/>)
    /// names: the name when only its breadth was refused (a valid pattern), otherwise null (client text that failed
    /// its check is not echoed).
    /// </summary>
    public static string? NamedRoom(string code, string? name) => code == ErrorCodes.PatternTooBroad ? name : null;

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
