using Bridge.Contracts;

namespace Bridge.Worker.Security;

/// <summary>
/// A room pattern from a token's grant, with the wildcards of NATS subjects: <c>*</c> matches exactly one token,
/// <c>&gt;</c> (last token only) matches one or more. Room names themselves can never contain <c>*</c>, <c>&gt;</c>,
/// empty tokens or non-ASCII characters (<see cref="RoomName"/>), so a name cannot widen a pattern.
/// </summary>
internal sealed class RoomPattern
{
    private readonly string[] _tokens;

    private RoomPattern(string text, string[] tokens)
    {
        Text = text;
        _tokens = tokens;
    }

    public string Text { get; }

    /// <summary>True when it has a wildcard (a pattern joined as such); false for a plain room name.</summary>
    public bool IsWildcard => RoomName.IsPattern(Text);

    /// <summary>Literal tokens before the first wildcard: how narrow the pattern is (<c>devices.site-3.&gt;</c>: 2, <c>&gt;</c>: 0).</summary>
    public int LiteralPrefixTokens
    {
        get
        {
            var count = 0;
            while (count < _tokens.Length && _tokens[count] is not ("*" or ">"))
            {
                count++;
            }

            return count;
        }
    }

    /// <summary>Parses a pattern; false for anything but dot-separated room tokens, <c>*</c> and a final <c>&gt;</c>.</summary>
    public static bool TryParse(string? text, out RoomPattern? pattern)
    {
        pattern = null;
        if (string.IsNullOrEmpty(text) || text.Length > RoomName.MaxLength)
        {
            return false;
        }

        var tokens = text.Split('.');
        if (tokens.Length > RoomName.MaxTokens)
        {
            return false;
        }

        for (var i = 0; i < tokens.Length; i++)
        {
            var token = tokens[i];
            var ok = token == "*" || (token == ">" && i == tokens.Length - 1) || RoomName.IsValid(token);
            if (!ok)
            {
                return false;
            }
        }

        pattern = new RoomPattern(text, tokens);
        return true;
    }

    /// <summary>True when the (valid) room name matches this pattern.</summary>
    public bool Matches(string room)
    {
        var i = 0;
        var start = 0;
        while (true)
        {
            if (i == _tokens.Length)
            {
                return false; // the room has more tokens than the pattern
            }

            var end = room.IndexOf('.', start);
            var token = end < 0 ? room.AsSpan(start) : room.AsSpan(start, end - start);
            var expected = _tokens[i];
            if (expected == ">")
            {
                return true; // one or more remaining tokens: there is at least this one
            }

            if (expected != "*" && !token.SequenceEqual(expected))
            {
                return false;
            }

            i++;
            if (end < 0)
            {
                return i == _tokens.Length;
            }

            start = end + 1;
        }
    }

    /// <summary>
    /// True when every room <paramref name="other"/> can match is matched by this pattern (<c>a.&gt;</c> covers
    /// <c>a.b.*</c>; <c>a.*</c> does not cover <c>a.&gt;</c>, which also matches <c>a.b.c</c>).
    /// </summary>
    public bool Covers(RoomPattern other)
    {
        for (var i = 0; i < _tokens.Length; i++)
        {
            var mine = _tokens[i];
            if (i == other._tokens.Length)
            {
                return false; // this pattern needs more tokens than the other's rooms have
            }

            var theirs = other._tokens[i];
            if (mine == ">")
            {
                return true; // the rest, one token or more: the other has at least this one
            }

            if (theirs == ">")
            {
                return false; // the other matches rooms of any length; this pattern's length is bounded
            }

            if (mine != "*" && (theirs == "*" || mine != theirs))
            {
                return false;
            }
        }

        return _tokens.Length == other._tokens.Length;
    }

    /// <summary>True when some room matches both patterns (a connection joined to both would be sent it twice).</summary>
    public bool Overlaps(RoomPattern other) => RoomName.Overlaps(Text, other.Text);

    public override string ToString() => Text;
}

/// <summary>The rooms a user may join or publish to: a set of patterns, checked in order.</summary>
internal sealed class RoomGrant
{
    public static readonly RoomGrant All = new([Parse(">")]);

    public static readonly RoomGrant None = new([]);

    private readonly RoomPattern[] _patterns;

    public RoomGrant(IReadOnlyList<RoomPattern> patterns) => _patterns = [.. patterns];

    public IReadOnlyList<RoomPattern> Patterns => _patterns;

    /// <summary>
    /// True when the grant allows every room <paramref name="pattern"/> can match: one of its patterns covers it
    /// (<c>devices.site-3.*</c> allows <c>devices.site-3.*</c>, not <c>devices.&gt;</c>). A room pattern is a pattern
    /// of one room, so this is <see cref="Allows"/> for a room.
    /// </summary>
    public bool AllowsAll(RoomPattern pattern)
    {
        foreach (var granted in _patterns)
        {
            if (granted.Covers(pattern))
            {
                return true;
            }
        }

        return false;
    }

    public bool Allows(string room)
    {
        foreach (var pattern in _patterns)
        {
            if (pattern.Matches(room))
            {
                return true;
            }
        }

        return false;
    }

    private static RoomPattern Parse(string text) =>
        RoomPattern.TryParse(text, out var pattern) ? pattern! : throw new ArgumentException($"bad pattern {text}", nameof(text));
}
