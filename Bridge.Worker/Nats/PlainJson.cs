using System.Buffers;
using System.Text.Unicode;

namespace Bridge.Worker.Nats;

/// <summary>
/// A quick first look at a stored JSON payload, in front of <see cref="Bridge.Contracts.PayloadTranscoder.IsValidJson"/>:
/// true only for a payload that is certainly one valid JSON value by that check's rules, false for anything it leaves
/// to that check. It accepts the plain form most backends write: no escapes in strings, numbers without an exponent and
/// at most 300 characters, at most 16 levels deep, strings in any Unicode text (the whole payload is then checked as
/// UTF-8 once, as the full check does); anything else (malformed, an escape, an exponent, deeper, bytes that are not
/// UTF-8) answers false and goes through the full check, which decides. A replay's every message is checked
/// where it enters (live or read back), and the full check (a <c>Utf8JsonReader</c> pass, a UTF-8 pass and an escape search) was the largest
/// part of reading a delivery ("Replay, fifteenth pass (issue 14): the read side", docs/benchmarks.md).
/// </summary>
internal static class PlainJson
{
    // Deeper values are left to the full check (its limit is ProtocolLimits.MaxPayloadDepth, 32).
    private const int MaxDepth = 16;

    // Past this many characters a number may be out of float64's range: left to the full check, as it parses those.
    private const int MaxNumber = 300;

    // What ends a plain string's run of ASCII characters: its closing quote, what the full check must look at (an escape,
    // a control character, which is invalid), or a non-ASCII byte (text, checked as UTF-8 at the end).
    private static readonly SearchValues<byte> StringStops = SearchValues.Create(
        [(byte)'"', (byte)'\\', .. Enumerable.Range(0, 0x20).Select(b => (byte)b), .. Enumerable.Range(0x80, 0x80).Select(b => (byte)b)]);

    /// <summary>True when <paramref name="json"/> is certainly one valid JSON value (see the type); false: undecided.</summary>
    public static bool IsCertainlyValid(ReadOnlySpan<byte> json)
    {
        var i = SkipSpace(json, 0);
        // One bit per open container, innermost lowest: 1 an object, 0 an array.
        var objects = 0u;
        var depth = 0;
        // A string held bytes past ASCII: the payload must be UTF-8 (outside strings, such bytes fail the pass anyway).
        var text = false;
        while (true)
        {
            // A value at i.
            if (i >= json.Length)
            {
                return false;
            }

            switch (json[i])
            {
                case (byte)'{':
                    if (++depth > MaxDepth)
                    {
                        return false;
                    }

                    objects = (objects << 1) | 1;
                    i = SkipSpace(json, i + 1);
                    if (i < json.Length && json[i] == (byte)'}')
                    {
                        i++;
                        depth--;
                        objects >>= 1;
                        break;
                    }

                    if (!TryName(json, ref i, ref text))
                    {
                        return false;
                    }

                    continue;
                case (byte)'[':
                    if (++depth > MaxDepth)
                    {
                        return false;
                    }

                    objects <<= 1;
                    i = SkipSpace(json, i + 1);
                    if (i < json.Length && json[i] == (byte)']')
                    {
                        i++;
                        depth--;
                        objects >>= 1;
                        break;
                    }

                    continue;
                case (byte)'"':
                    if (!TryString(json, ref i, ref text))
                    {
                        return false;
                    }

                    break;
                case (byte)'t':
                    if (!TryLiteral(json, ref i, "true"u8))
                    {
                        return false;
                    }

                    break;
                case (byte)'f':
                    if (!TryLiteral(json, ref i, "false"u8))
                    {
                        return false;
                    }

                    break;
                case (byte)'n':
                    if (!TryLiteral(json, ref i, "null"u8))
                    {
                        return false;
                    }

                    break;
                default:
                    if (!TryNumber(json, ref i))
                    {
                        return false;
                    }

                    break;
            }

            // After a value (and after any container it closed): a comma, a close, or the end.
            while (true)
            {
                i = SkipSpace(json, i);
                if (depth == 0)
                {
                    return i == json.Length && (!text || Utf8.IsValid(json));
                }

                if (i >= json.Length)
                {
                    return false;
                }

                var c = json[i];
                if (c == (byte)',')
                {
                    i = SkipSpace(json, i + 1);
                    if ((objects & 1) == 1 && !TryName(json, ref i, ref text))
                    {
                        return false;
                    }

                    break; // a value next
                }

                if (c != ((objects & 1) == 1 ? (byte)'}' : (byte)']'))
                {
                    return false;
                }

                i++;
                depth--;
                objects >>= 1;
            }
        }
    }

    // A name and its colon at i (i at the name's quote); i after the colon and its space.
    private static bool TryName(ReadOnlySpan<byte> json, ref int i, ref bool text)
    {
        if (i >= json.Length || json[i] != (byte)'"' || !TryString(json, ref i, ref text))
        {
            return false;
        }

        i = SkipSpace(json, i);
        if (i >= json.Length || json[i] != (byte)':')
        {
            return false;
        }

        i = SkipSpace(json, i + 1);
        return true;
    }

    // A string without escapes or control characters at i (its opening quote); i after its closing quote. Bytes past
    // ASCII set text (checked as UTF-8 once the value is read).
    private static bool TryString(ReadOnlySpan<byte> json, ref int i, ref bool text)
    {
        var at = i + 1;
        while (true)
        {
            var length = json[at..].IndexOfAny(StringStops);
            if (length < 0)
            {
                return false;
            }

            at += length;
            var c = json[at];
            if (c == (byte)'"')
            {
                i = at + 1;
                return true;
            }

            if (c < 0x80)
            {
                return false; // an escape or a control character
            }

            text = true;
            at = json[at..].IndexOfAnyInRange((byte)0, (byte)0x7F) is var ascii and >= 0 ? at + ascii : json.Length;
        }
    }

    private static bool TryLiteral(ReadOnlySpan<byte> json, ref int i, ReadOnlySpan<byte> literal)
    {
        if (!json[i..].StartsWith(literal))
        {
            return false;
        }

        i += literal.Length;
        return true;
    }

    // -?(0|[1-9][0-9]*)(\.[0-9]+)? at i; i after it. What follows is the caller's (a delimiter, else it answers false).
    private static bool TryNumber(ReadOnlySpan<byte> json, ref int i)
    {
        var start = i;
        if (json[i] == (byte)'-')
        {
            i++;
        }

        if (i >= json.Length || !char.IsAsciiDigit((char)json[i]))
        {
            return false;
        }

        if (json[i] == (byte)'0')
        {
            i++;
        }
        else
        {
            i = Digits(json, i);
        }

        if (i < json.Length && json[i] == (byte)'.')
        {
            var fraction = i + 1;
            i = Digits(json, fraction);
            if (i == fraction)
            {
                return false;
            }
        }

        return i - start <= MaxNumber;
    }

    private static int Digits(ReadOnlySpan<byte> json, int i)
    {
        var end = json[i..].IndexOfAnyExceptInRange((byte)'0', (byte)'9');
        return end < 0 ? json.Length : i + end;
    }

    private static int SkipSpace(ReadOnlySpan<byte> json, int i)
    {
        while (i < json.Length && json[i] is (byte)' ' or (byte)'\t' or (byte)'\n' or (byte)'\r')
        {
            i++;
        }

        return i;
    }
}
