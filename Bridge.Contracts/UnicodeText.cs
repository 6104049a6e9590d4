using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using MessagePack;

namespace Bridge.Contracts;

/// <summary>
/// The one rule for text entering Bridge: every string, at any depth, in any format, is Unicode text. Its bytes are
/// UTF-8 (no invalid, overlong, truncated or surrogate sequences), and in JSON no <c>\u</c> escape spells a lone
/// surrogate. Neither System.Text.Json's reader nor MessagePack's checks this by itself: the reader passes string
/// bytes through unread, <c>JsonElement.GetString</c> throws on them later, and MessagePack replaces them with
/// U+FFFD. So the codecs check once, at the edge, and nothing behind it can meet a string it cannot transcode.
/// </summary>
public static class UnicodeText
{
    /// <summary>The rule in one sentence: what a <c>bad_frame</c> error says when it cannot tell which part was broken.</summary>
    public const string InvalidMessage = "a string is not valid UTF-8 text (or escapes a lone surrogate)";

    /// <summary>
    /// The message of the <c>bad_frame</c> error for a string whose bytes are not UTF-8, in every format: the same
    /// bad input gets the same words from a JSON and a MessagePack connection (docs/protocol.md §8).
    /// </summary>
    public const string NotUtf8Message = "a string is not valid UTF-8 text";

    /// <summary>The message of the <c>bad_frame</c> error for a JSON <c>\u</c> escape of a lone surrogate (JSON only).</summary>
    public const string LoneSurrogateMessage = "a string escapes a lone surrogate";

    /// <summary>The message of the <c>bad_frame</c> error for a MessagePack <c>str</c> that breaks the rule.</summary>
    public const string InvalidMessagePackMessage = NotUtf8Message;

    /// <summary>
    /// Which part of the rule JSON text that breaks it breaks: <see cref="NotUtf8Message"/> when its bytes are not
    /// UTF-8, <see cref="LoneSurrogateMessage"/> otherwise (an escape is then all that can break it).
    /// </summary>
    /// <param name="json">JSON text known to break the rule.</param>
    public static string Describe(ReadOnlySpan<byte> json) => Utf8.IsValid(json) ? LoneSurrogateMessage : NotUtf8Message;

    // Only a \u escape can spell a surrogate; \n, \" and the like cannot.
    private static ReadOnlySpan<byte> UnicodeEscape => "\\u"u8;

    /// <summary>True when the bytes are UTF-8 (vectorized: one pass, no allocation).</summary>
    /// <param name="bytes">Any bytes.</param>
    public static bool IsUtf8(ReadOnlySpan<byte> bytes) => Utf8.IsValid(bytes);

    /// <summary>
    /// True when every string of the JSON text (values and property names) is Unicode text. The text is assumed
    /// well-formed (callers parse it); malformed JSON is reported as false too.
    /// </summary>
    public static bool HasOnlyUnicodeStrings(ReadOnlySpan<byte> json)
    {
        // Outside strings, valid JSON is ASCII: checking the whole text as UTF-8 checks every string's bytes.
        if (!Utf8.IsValid(json))
        {
            return false;
        }

        if (json.IndexOf(UnicodeEscape) < 0)
        {
            return true; // the common case: nothing left to check
        }

        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = ProtocolLimits.MaxPayloadDepth + 1 });
            while (reader.Read())
            {
                if (reader.TokenType is JsonTokenType.String or JsonTokenType.PropertyName && reader.ValueIsEscaped &&
                    reader.ValueSpan.IndexOf(UnicodeEscape) >= 0 && !UnescapesToUnicode(ref reader))
                {
                    return false;
                }
            }

            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static bool UnescapesToUnicode(ref Utf8JsonReader reader)
    {
        // Unescaping never makes a string longer than its escaped bytes. CopyString throws on a lone surrogate.
        var length = reader.ValueSpan.Length;
        var rented = length > 256 ? ArrayPool<char>.Shared.Rent(length) : null;
        Span<char> scratch = rented ?? stackalloc char[256];
        try
        {
            reader.CopyString(scratch);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<char>.Shared.Return(rented);
            }
        }
    }

    /// <summary>
    /// Reads a MessagePack <c>str</c> whose bytes must be UTF-8 (the reader's own <c>ReadString</c> would replace bad
    /// bytes with U+FFFD). Throws <see cref="FormatException"/> when they are not.
    /// </summary>
    public static string ReadString(ref MessagePackReader reader) =>
        Encoding.UTF8.GetString(reader.TryReadStringSpan(out var bytes) ? Checked(bytes) : ReadStringBytes(ref reader).Span);

    /// <summary>Skips a MessagePack <c>str</c>, checking its bytes like <see cref="ReadString"/>.</summary>
    public static void SkipString(ref MessagePackReader reader)
    {
        // A str within the reader's current buffer (every frame and stored body: one array) is checked where it lies:
        // MessagePack's TryReadStringSpan, not ReadStringSequence, whose slice of the sequence cost more of a message's
        // walk than the check itself (docs/benchmarks.md, "MessagePack publish → MessagePack receive"). It reads
        // nothing for nil or a str split across buffers: those are read as a sequence.
        if (reader.TryReadStringSpan(out var bytes))
        {
            Checked(bytes);
        }
        else
        {
            ReadStringBytes(ref reader);
        }
    }

    private static ReadOnlySpan<byte> Checked(ReadOnlySpan<byte> bytes) =>
        Utf8.IsValid(bytes) ? bytes : throw new FormatException(InvalidMessagePackMessage);

    /// <summary>
    /// Reads a MessagePack <c>str</c> (or <c>nil</c>, as empty) as its UTF-8 bytes, checked like
    /// <see cref="ReadString"/>; no copy when the reader's input is one buffer. Throws <see cref="FormatException"/>
    /// when they are not UTF-8, and MessagePack's exceptions when the next value is not a str.
    /// </summary>
    public static ReadOnlyMemory<byte> ReadStringBytes(ref MessagePackReader reader)
    {
        // Frames and stored bodies are read from one array, so a str is always contiguous; the copy is for other input.
        var sequence = reader.ReadStringSequence() ?? default;
        var bytes = sequence.IsSingleSegment ? sequence.First : sequence.ToArray();
        if (!Utf8.IsValid(bytes.Span))
        {
            throw new FormatException(InvalidMessagePackMessage);
        }

        return bytes;
    }
}
