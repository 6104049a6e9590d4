using System.Globalization;
using System.Text;
using Bridge.Contracts;

namespace Bridge.Worker.Protocol;

/// <summary>
/// A resume position over one or more rooms or room patterns: the SSE event id and the long-poll cursor. A pattern's
/// position is a stream seq like a room's (<c>devices.site-3.&gt;=42</c>: every message of its rooms after 42).
/// One room: the room's seq (<c>42</c>). Several rooms: <c>room=seq</c> pairs joined by commas
/// (<c>a=42,b.c=7</c>); room names cannot contain '=' or ','. Each room's seq is the last of its messages
/// the client has received (or its <c>room.joined</c> position), so resuming every room from its own seq
/// loses nothing, whichever worker serves the reconnect: a single highest seq would not be safe, because
/// different rooms reach a worker through different subscriptions.
/// </summary>
internal static class Cursor
{
    /// <summary>Most characters accepted in a cursor (100 rooms of maximal names with 20-digit seqs fit).</summary>
    public const int MaxLength = 16 * 1024;

    /// <summary>Why <paramref name="text"/>, the value of <paramref name="field"/>, was refused by <see cref="TryParse"/>.</summary>
    public static string RefusalMessage(string field, string? text) =>
        text?.Length > MaxLength
            ? $"{field} is longer than {MaxLength / 1024} KiB ({MaxLength} characters)"
            : RepeatedRoom(text) is { } room
                ? $"{field} names room '{room}' twice: one position per room"
                : $"{field} must be a seq (one room) or room=seq pairs separated by commas";

    // The room (or pattern) a cursor names twice when that is its first fault in reading order, else null: in
    // "b=x,a=1,a=2" the fault is the pair "b=x", not the repeat after it.
    private static string? RepeatedRoom(string? text)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var pair in (text ?? "").Split(','))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !(RoomName.IsValid(pair[..eq]) || RoomName.IsValidPattern(pair[..eq])) ||
                !ulong.TryParse(pair.AsSpan(eq + 1), NumberStyles.None, CultureInfo.InvariantCulture, out _))
            {
                return null;
            }

            if (!seen.Add(pair[..eq]))
            {
                return pair[..eq];
            }
        }

        return null;
    }

    /// <summary>
    /// Parses a cursor for <paramref name="rooms"/>; rooms it does not name get no position. False for a malformed
    /// cursor, and for one naming a room twice (two positions for one room contradict each other).
    /// </summary>
    public static bool TryParse(string? text, IReadOnlyList<string> rooms, out Dictionary<string, ulong> positions)
    {
        positions = new Dictionary<string, ulong>(StringComparer.Ordinal);
        if (string.IsNullOrEmpty(text))
        {
            return true;
        }

        if (text.Length > MaxLength)
        {
            return false;
        }

        if (!text.Contains('=', StringComparison.Ordinal))
        {
            if (rooms.Count != 1 || !ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var single))
            {
                return false;
            }

            positions[rooms[0]] = single;
            return true;
        }

        foreach (var pair in text.Split(','))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            if (eq <= 0 || !(RoomName.IsValid(pair[..eq]) || RoomName.IsValidPattern(pair[..eq])) ||
                !ulong.TryParse(pair.AsSpan(eq + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var seq))
            {
                return false;
            }

            if (!positions.TryAdd(pair[..eq], seq))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Formats the positions of <paramref name="rooms"/> (in that order) that are known.</summary>
    public static string Format(IReadOnlyList<string> rooms, IReadOnlyDictionary<string, ulong> positions)
    {
        if (rooms.Count == 1)
        {
            return positions.TryGetValue(rooms[0], out var only) ? only.ToString(CultureInfo.InvariantCulture) : "";
        }

        var sb = new StringBuilder();
        foreach (var room in rooms)
        {
            if (positions.TryGetValue(room, out var seq))
            {
                if (sb.Length > 0)
                {
                    sb.Append(',');
                }

                sb.Append(room).Append('=').Append(seq.ToString(CultureInfo.InvariantCulture));
            }
        }

        return sb.ToString();
    }
}
