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
}

internal static class Names
{
    public static bool IsDotted(string? value, int maxLength, int maxTokens)
    {
        if (string.IsNullOrEmpty(value) || value.Length > maxLength)
        {
            return false;
        }

        var tokens = 1;
        var tokenLength = 0;
        foreach (var c in value)
        {
            if (c == '.')
            {
                if (tokenLength == 0 || ++tokens > maxTokens)
                {
                    return false;
                }

                tokenLength = 0;
                continue;
            }

            if (!IsTokenChar(c))
            {
                return false;
            }

            tokenLength++;
        }

        return tokenLength > 0;
    }

    private static bool IsTokenChar(char c) =>
        c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' or '-';
}
