using Bridge.Contracts;
using CsCheck;

namespace Bridge.Tests.Unit;

/// <summary>Room names and message types: dotted names, checked in vectorized passes.</summary>
public sealed class DottedNameTests
{
    [Fact]
    public void Any_string_is_a_valid_room_name_and_type_exactly_when_a_character_by_character_check_says_so()
    {
        // Mostly name characters and dots (so valid names and near misses both come up), some others, some non-ASCII.
        var ch = Gen.Frequency((8, Gen.Char["ab-_.Z9"]), (2, Gen.Char['.', '.']), (1, Gen.Char[' ', '~']), (1, Gen.Char['\u00e0', '\u00ff']));
        var value = Gen.OneOf(ch.Array[0, 20].Select(c => new string(c)), ch.Array[120, 140].Select(c => new string(c)),
            Gen.Int[1, 20].Select(n => string.Join('.', Enumerable.Repeat("a", n))));
        value.Sample(s =>
        {
            Assert.Equal(CharByChar(s, RoomName.MaxLength, RoomName.MaxTokens), RoomName.IsValid(s));
            Assert.Equal(CharByChar(s, MessageTypes.MaxLength, 8), MessageTypes.IsValid(s));
        }, iter: 20_000);
    }

    // The check IsDotted replaced: the reference.
    private static bool CharByChar(string value, int maxLength, int maxTokens)
    {
        if (value.Length == 0 || value.Length > maxLength)
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

            if (!(c is (>= 'a' and <= 'z') or (>= 'A' and <= 'Z') or (>= '0' and <= '9') or '_' or '-'))
            {
                return false;
            }

            tokenLength++;
        }

        return tokenLength > 0;
    }
}
