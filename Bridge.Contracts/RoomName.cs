namespace Bridge.Contracts;

/// <summary>
/// Room names. A room maps to exactly one NATS subject, <c>rooms.&lt;room&gt;</c>, so a name may only contain
/// characters that cannot change the subject's meaning: dot-separated tokens of ASCII letters, digits,
/// '_' and '-'. Wildcards ('*', '&gt;'), spaces, control characters, non-ASCII look-alikes and empty tokens
/// are refused.
/// </summary>
public static class RoomName
{
    /// <summary>Longest accepted room name, in characters (each is one byte: the alphabet is ASCII).</summary>
    public const int MaxLength = 128;

    /// <summary>Most dot-separated tokens in a room name.</summary>
    public const int MaxTokens = 16;

    /// <summary>True when <paramref name="room"/> is a valid room name.</summary>
    public static bool IsValid(string? room) => Names.IsDotted(room, MaxLength, MaxTokens);

    /// <summary>
    /// True when <paramref name="name"/> contains a wildcard (<c>*</c> or <c>&gt;</c>): a join names a room pattern
    /// rather than a room. Room names never contain either, so the two cannot be confused. Says nothing about whether
    /// the pattern is well formed (<see cref="IsValidPattern"/>).
    /// </summary>
    public static bool IsPattern(string? name) => name is not null && name.AsSpan().IndexOfAny('*', '>') >= 0;

    /// <summary>
    /// True when <paramref name="pattern"/> is a valid room pattern: 1 to <see cref="MaxLength"/> characters of 1 to
    /// <see cref="MaxTokens"/> dot-separated tokens, each a room token, <c>*</c> (exactly one token) or, as the last
    /// token only, <c>&gt;</c> (one or more tokens), with at least one wildcard. <c>devices.site-3.*</c> and
    /// <c>devices.&gt;</c> are patterns; <c>devices.*x</c>, <c>devices.&gt;.a</c> and <c>devices..*</c> are not.
    /// </summary>
    public static bool IsValidPattern(string? pattern)
    {
        if (!IsPattern(pattern) || pattern!.Length > MaxLength)
        {
            return false;
        }

        var tokens = pattern.Split('.');
        if (tokens.Length > MaxTokens)
        {
            return false;
        }

        for (var i = 0; i < tokens.Length; i++)
        {
            var token = tokens[i];
            if (token != "*" && !(token == ">" && i == tokens.Length - 1) && !Names.IsDotted(token, MaxLength, 1))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// True when some room can be named by both <paramref name="name"/> and <paramref name="other"/>, each a valid room
    /// or room pattern: two equal rooms, a pattern and a room it matches (<c>devices.*</c> and <c>devices.d1</c>), two
    /// patterns that share a room (<c>devices.site-3.*</c> and <c>devices.&gt;</c>). A connection joined to both is sent each
    /// such room's messages once (docs/protocol.md §4), so a client cannot tell which join a message belongs to.
    /// </summary>
    public static bool Overlaps(string name, string other)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(other);
        var a = name.Split('.');
        var b = other.Split('.');
        for (var i = 0; ; i++)
        {
            if (i == a.Length || i == b.Length)
            {
                return a.Length == b.Length;
            }

            if (a[i] == ">" || b[i] == ">")
            {
                return true; // both still have a token here, so a room can go on to satisfy either
            }

            if (a[i] != "*" && b[i] != "*" && a[i] != b[i])
            {
                return false;
            }
        }
    }
}

internal static class Names
{
    // The characters of a dotted name: its tokens' characters and the dots between them.
    private static readonly System.Buffers.SearchValues<char> DottedChars =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.");

    /// <summary>
    /// Whether <paramref name="value"/> is 1 to <paramref name="maxTokens"/> non-empty tokens of ASCII letters, digits,
    /// <c>_</c> and <c>-</c>, joined by dots, in at most <paramref name="maxLength"/> characters. Read in vectorized passes
    /// (a stored message's type is checked this way per message read: "Replay, sixth pass (issue 14)").
    /// </summary>
    public static bool IsDotted(string? value, int maxLength, int maxTokens)
    {
        if (string.IsNullOrEmpty(value) || value.Length > maxLength)
        {
            return false;
        }

        var span = value.AsSpan();
        return span.IndexOfAnyExcept(DottedChars) < 0 && span[0] != '.' && span[^1] != '.' && !span.Contains("..", StringComparison.Ordinal) &&
               span.Count('.') < maxTokens;
    }
}
