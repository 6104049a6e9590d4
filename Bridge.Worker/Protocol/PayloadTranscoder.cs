using System.Text;
using System.Text.Json;
using MessagePack;

namespace Bridge.Worker.Protocol;

/// <summary>
/// Converts payloads between JSON (how they are stored) and MessagePack (how msgpack clients see them).
/// The mapping is documented in docs/protocol.md: maps need string keys, extension types and NaN/Infinity
/// have no JSON form and are refused, nested bin becomes a base64 string.
/// </summary>
internal static class PayloadTranscoder
{
    // Deep enough for any sane document, shallow enough that recursion can never exhaust the stack.
    public const int MaxDepth = 32;

    /// <summary>The message of the <c>bad_frame</c> error for a number no float64 holds.</summary>
    public const string NumberOutOfRange = "a number is beyond the float64 range (about 1.8e308)";

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = MaxDepth };

    // Names must be unique: a MessagePack map with a key twice breaks decoders that read maps into dictionaries (and
    // JSON says names SHOULD be unique). System.Text.Json checks it while it parses (hashing large objects).
    private static readonly JsonDocumentOptions UniqueNames = new() { MaxDepth = MaxDepth, AllowDuplicateProperties = false };

    /// <summary>
    /// True when <paramref name="json"/> is a stored payload: exactly one JSON value, nested at most
    /// <see cref="MaxDepth"/> levels, every string Unicode text (<see cref="UnicodeText"/>), every number within
    /// float64's range (MessagePack has no form for <c>1e400</c>, which would arrive as Infinity, as JSON has none for
    /// MessagePack's NaN and Infinity). One reader pass, no allocation: it runs on every message read off the stream.
    /// Names are not checked here: a backend's body with a name twice goes to MessagePack members as binary (the
    /// encoder refuses it, <see cref="WriteJsonAsMessagePack"/>).
    /// </summary>
    public static bool IsValidJson(ReadOnlyMemory<byte> json) => Check(json.Span, stringsChecked: false, uniqueNames: false, out _) is null;

    /// <summary>
    /// Why a client's payload is refused, or null when it may be stored: the rules of <see cref="IsValidJson"/>, and
    /// no name twice in an object (so every client payload reaches every format as JSON).
    /// <paramref name="stringsChecked"/>: the caller already checked every string of these bytes as Unicode text.
    /// </summary>
    public static string? CheckJson(ReadOnlyMemory<byte> json, bool stringsChecked = false)
    {
        if (Check(json.Span, stringsChecked, uniqueNames: true, out var namesLeft) is { } problem)
        {
            return problem;
        }

        if (!namesLeft)
        {
            return null;
        }

        try
        {
            JsonDocument.Parse(json, UniqueNames).Dispose(); // returns its pooled buffers
            return null;
        }
        catch (JsonException ex)
        {
            return $"malformed JSON payload: {ex.Message}";
        }
    }

    // Names compared in the reader's pass (most payloads: a few names, none escaped); beyond these, or with an
    // escaped name ("\u0061" is "a"), System.Text.Json's own check runs after it.
    private const int ComparedNames = 32;

    /// <summary>
    /// The reader pass behind <see cref="IsValidJson"/> and <see cref="CheckJson"/>. With <paramref name="uniqueNames"/>,
    /// names are compared within each object as it goes; <paramref name="namesLeft"/> says some could not be
    /// (too many, or escaped) and need the full check.
    /// </summary>
    private static string? Check(ReadOnlySpan<byte> json, bool stringsChecked, bool uniqueNames, out bool namesLeft)
    {
        namesLeft = false;
        if (!stringsChecked && !UnicodeText.HasOnlyUnicodeStrings(json))
        {
            return UnicodeText.InvalidMessage;
        }

        // Each name as (start, length) in json; firstName[d] is where the names of the object opened at depth d begin.
        Span<int> nameStart = stackalloc int[ComparedNames];
        Span<int> nameLength = stackalloc int[ComparedNames];
        Span<int> firstName = stackalloc int[MaxDepth + 1];
        var names = 0;
        try
        {
            var reader = new Utf8JsonReader(json, ReaderOptions);
            if (!reader.Read())
            {
                return "the payload is empty";
            }

            // The reader checks structure and depth as it goes (and throws on a truncated value).
            while (true)
            {
                switch (reader.TokenType)
                {
                    // Without an exponent, up to 300 digits are always within range: only other numbers need parsing.
                    case JsonTokenType.Number when
                        (reader.ValueSpan.Length > 300 || reader.ValueSpan.IndexOfAny((byte)'e', (byte)'E') >= 0) &&
                        (!reader.TryGetDouble(out var value) || !double.IsFinite(value)):
                        return NumberOutOfRange;
                    case JsonTokenType.StartObject when uniqueNames:
                        firstName[reader.CurrentDepth] = names;
                        break;
                    case JsonTokenType.EndObject when uniqueNames:
                        names = firstName[reader.CurrentDepth];
                        break;
                    case JsonTokenType.PropertyName when uniqueNames && !namesLeft:
                        if (reader.ValueIsEscaped || names == ComparedNames)
                        {
                            namesLeft = true;
                            break;
                        }

                        // A name's token starts at its opening quote; unescaped, its bytes are its value.
                        var start = (int)reader.TokenStartIndex + 1;
                        var name = json.Slice(start, reader.ValueSpan.Length);
                        for (var i = firstName[reader.CurrentDepth - 1]; i < names; i++)
                        {
                            if (json.Slice(nameStart[i], nameLength[i]).SequenceEqual(name))
                            {
                                return $"malformed JSON payload: duplicate property '{Encoding.UTF8.GetString(name)}' in one object";
                            }
                        }

                        nameStart[names] = start;
                        nameLength[names] = name.Length;
                        names++;
                        break;
                }

                // A scalar at the top, or the top container's end, ends the value.
                if (reader.CurrentDepth == 0 && reader.TokenType is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
                {
                    break;
                }

                reader.Read();
            }

            return reader.Read() ? "unexpected data after the JSON value" : null;
        }
        catch (JsonException ex)
        {
            return $"malformed JSON payload: {ex.Message}";
        }
    }

    /// <summary>Writes the JSON value <paramref name="json"/> as one MessagePack value.</summary>
    public static void WriteJsonAsMessagePack(ReadOnlyMemory<byte> json, ref MessagePackWriter writer)
    {
        // A name twice (possible only in a backend's body) throws: the message goes to MessagePack members as binary.
        using var document = JsonDocument.Parse(json, UniqueNames);
        WriteElement(document.RootElement, ref writer);
    }

    private static void WriteElement(JsonElement element, ref MessagePackWriter writer)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var count = 0;
                foreach (var unused in element.EnumerateObject())
                {
                    count++;
                }

                writer.WriteMapHeader(count);
                foreach (var property in element.EnumerateObject())
                {
                    writer.Write(property.Name);
                    WriteElement(property.Value, ref writer);
                }

                break;
            case JsonValueKind.Array:
                writer.WriteArrayHeader(element.GetArrayLength());
                foreach (var item in element.EnumerateArray())
                {
                    WriteElement(item, ref writer);
                }

                break;
            case JsonValueKind.String:
                writer.Write(element.GetString());
                break;
            case JsonValueKind.Number:
                if (element.TryGetInt64(out var l))
                {
                    writer.Write(l);
                }
                else if (element.TryGetUInt64(out var ul))
                {
                    writer.Write(ul);
                }
                else
                {
                    // Checked at the edge (SkipValue); a stored body is checked when read. Never write Infinity.
                    var d = element.GetDouble();
                    writer.Write(double.IsFinite(d) ? d : throw new FormatException(NumberOutOfRange));
                }

                break;
            case JsonValueKind.True:
                writer.Write(true);
                break;
            case JsonValueKind.False:
                writer.Write(false);
                break;
            default:
                writer.WriteNil();
                break;
        }
    }

    /// <summary>
    /// Reads one MessagePack value and writes it as JSON. Containers may nest <see cref="MaxDepth"/> levels,
    /// the same limit a JSON payload has.
    /// Throws <see cref="FormatException"/> when the value has no JSON form, and MessagePack's own
    /// exceptions when it is truncated or malformed.
    /// </summary>
    public static void WriteMessagePackAsJson(ref MessagePackReader reader, Utf8JsonWriter writer, int depth = 0)
    {
        if (depth >= MaxDepth && reader.NextMessagePackType is MessagePackType.Array or MessagePackType.Map)
        {
            throw new FormatException($"payload nests deeper than {MaxDepth} levels");
        }

        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Nil:
                reader.ReadNil();
                writer.WriteNullValue();
                break;
            case MessagePackType.Boolean:
                writer.WriteBooleanValue(reader.ReadBoolean());
                break;
            case MessagePackType.Integer:
                if (reader.NextCode == MessagePackCode.UInt64)
                {
                    writer.WriteNumberValue(reader.ReadUInt64());
                }
                else
                {
                    writer.WriteNumberValue(reader.ReadInt64());
                }

                break;
            case MessagePackType.Float:
                var d = reader.ReadDouble();
                if (!double.IsFinite(d))
                {
                    throw new FormatException("NaN and Infinity have no JSON form");
                }

                writer.WriteNumberValue(d);
                break;
            case MessagePackType.String:
                writer.WriteStringValue(UnicodeText.ReadString(ref reader));
                break;
            case MessagePackType.Binary:
                var bytes = reader.ReadBytes() ?? default;
                writer.WriteBase64StringValue(bytes.IsSingleSegment ? bytes.FirstSpan : System.Buffers.BuffersExtensions.ToArray(bytes));
                break;
            case MessagePackType.Array:
                var length = reader.ReadArrayHeader();
                writer.WriteStartArray();
                for (var i = 0; i < length; i++)
                {
                    WriteMessagePackAsJson(ref reader, writer, depth + 1);
                }

                writer.WriteEndArray();
                break;
            case MessagePackType.Map:
                var entries = reader.ReadMapHeader();
                writer.WriteStartObject();
                for (var i = 0; i < entries; i++)
                {
                    if (reader.NextMessagePackType != MessagePackType.String)
                    {
                        throw new FormatException("payload map keys must be strings");
                    }

                    writer.WritePropertyName(UnicodeText.ReadString(ref reader));
                    WriteMessagePackAsJson(ref reader, writer, depth + 1);
                }

                writer.WriteEndObject();
                break;
            default:
                throw new FormatException("MessagePack extension types are not supported in payloads");
        }
    }

    /// <summary>
    /// Skips one MessagePack value with the same depth limit as the converters. MessagePackReader.Skip
    /// recurses without a limit, so a frame of nested one-byte arrays could otherwise exhaust the stack.
    /// Strings are checked as they are skipped: a frame is Unicode text wherever it has a str, as a JSON frame is.
    /// </summary>
    public static void Skip(ref MessagePackReader reader, int depth = 0)
    {
        if (depth >= MaxDepth && reader.NextMessagePackType is MessagePackType.Array or MessagePackType.Map)
        {
            throw new FormatException($"frame nests deeper than {MaxDepth} levels");
        }

        switch (reader.NextMessagePackType)
        {
            case MessagePackType.Array:
                var length = reader.ReadArrayHeader();
                for (var i = 0; i < length; i++)
                {
                    Skip(ref reader, depth + 1);
                }

                break;
            case MessagePackType.Map:
                var entries = reader.ReadMapHeader();
                for (var i = 0; i < entries * 2; i++)
                {
                    Skip(ref reader, depth + 1);
                }

                break;
            case MessagePackType.String:
                UnicodeText.SkipString(ref reader);
                break;
            default:
                reader.Skip();
                break;
        }
    }
}
