using System.Buffers;
using System.Buffers.Binary;
using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using MessagePack;

namespace Bridge.Contracts;

/// <summary>
/// The one place payloads are checked and converted between JSON and MessagePack (docs/protocol.md §3), used by the
/// gateway at its edges and when it encodes frames, and by Bridge.Client. A payload is stored in the encoding its
/// publisher used: JSON text (<see cref="NatsSubjects.JsonContentType"/>) or one MessagePack value
/// (<see cref="NatsSubjects.MessagePackContentType"/>); each member receives it in its own format, converted once per
/// message. The rules:
/// <list type="bullet">
/// <item>JSON → MessagePack: integers within int64 become ints, larger ones within uint64 become uint64, every other
/// number float64.</item>
/// <item>MessagePack → JSON: nil, bool, str, integers and floats map directly (float32 widened); a <c>bin</c> becomes
/// a base64 string; the timestamp extension (type -1) becomes an RFC 3339 UTC string with up to nine fractional
/// digits (<c>"2026-11-30T01:22:24.5Z"</c>); any other extension, and a timestamp outside years 1-9999, becomes
/// <c>{"$ext": type, "$data": "base64 of its bytes"}</c>.</item>
/// <item>No JSON form, so refused from clients (<see cref="CheckMessagePack(ReadOnlyMemory{byte})"/>) and, in a
/// stored payload, a reason to send JSON members the bytes as binary: map keys that are not <c>str</c>, NaN and
/// ±Infinity.</item>
/// <item>Both formats: at most <see cref="MaxDepth"/> levels, every string Unicode text (<see cref="UnicodeText"/>),
/// no name twice in one object or map, JSON numbers within float64's range.</item>
/// </list>
/// </summary>
public static partial class PayloadTranscoder
{
    /// <summary>Most levels of nesting in a payload: <see cref="ProtocolLimits.MaxPayloadDepth"/> (32).</summary>
    public const int MaxDepth = ProtocolLimits.MaxPayloadDepth;

    /// <summary>The message of the <c>bad_frame</c> error for a number no float64 holds.</summary>
    public const string NumberOutOfRange = "a number is beyond the float64 range (about 1.8e308)";

    /// <summary>The message of the <c>bad_frame</c> error for NaN or ±Infinity (JSON has no form for them).</summary>
    public const string NotFinite = "NaN and Infinity have no JSON form";

    /// <summary>The message of the <c>bad_frame</c> error for a map key that is not a <c>str</c>.</summary>
    public const string KeyNotString = "payload map keys must be strings";


    /// <summary>The MessagePack extension type of timestamps (the MessagePack specification's -1).</summary>
    public const sbyte TimestampExtension = -1;

    // Timestamps JSON renders as RFC 3339 text: the seconds DateTime holds (0001-01-01 to 9999-12-31).
    private const long MinRenderedSeconds = -62_135_596_800;
    private const long MaxRenderedSeconds = 253_402_300_799;

    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = MaxDepth };

    // Names must be unique: a MessagePack map with a key twice breaks decoders that read maps into dictionaries (and
    // JSON says names SHOULD be unique). System.Text.Json checks it while it parses (hashing large objects).
    private static readonly JsonDocumentOptions UniqueNames = new() { MaxDepth = MaxDepth, AllowDuplicateProperties = false };

    private static readonly JsonEncodedText ExtKey = JsonEncodedText.Encode("$ext");
    private static readonly JsonEncodedText ExtDataKey = JsonEncodedText.Encode("$data");

    /// <summary>
    /// What is wrong with malformed JSON, for an error's message, in Bridge's own words (never the wording of .NET's
    /// exceptions, which speaks of tokens, reader options and deserialization). Meant for the exceptions of
    /// <see cref="Utf8JsonReader"/>, <see cref="JsonDocument"/> and <see cref="JsonSerializer"/>: the fault they report
    /// (<c>expected ':' after a name, found '}'</c>; an unknown one: <c>the text is not well-formed JSON</c>), then,
    /// when <see cref="JsonException.BytePositionInLine"/> is set, where it is:
    /// <c>expected ':' after a name, found '}' (line 1, byte 6)</c>, line being <see cref="JsonException.LineNumber"/>
    /// + 1 and byte <see cref="JsonException.BytePositionInLine"/> + 1 (UTF-8 bytes within that line, both counted from
    /// 1). A name given twice reads as MessagePack's does (<see cref="DuplicateName"/>). A <see cref="JsonSerializer"/>
    /// exception for a value of the wrong type gives <c>the value at $.x does not have the expected type</c>.
    /// Throws <see cref="ArgumentNullException"/> when <paramref name="exception"/> is null.
    /// </summary>
    public static string DescribeMalformedJson(JsonException exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        var text = exception switch
        {
            { Path: null } => JsonFault(exception.Message),
            { InnerException: JsonException reader } => JsonFault(reader.Message),
            _ when DuplicateProperty().Match(exception.Message) is { Success: true } twice => DuplicateName(twice.Groups[1].Value),
            _ => $"the value at {exception.Path} does not have the expected type",
        };
        return exception.BytePositionInLine is { } position
            ? $"{text} (line {exception.LineNumber + 1}, byte {position + 1})"
            : text;
    }

    /// <summary>
    /// The message of the <c>bad_frame</c> error for <paramref name="name"/> given twice in one object (JSON) or map
    /// (MessagePack): <c>duplicate name: 'user' appears twice in one object</c>. A name over 64 characters is shown
    /// cut, with "...".
    /// </summary>
    public static string DuplicateName(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length > 64)
        {
            // Cut between characters, never inside a surrogate pair (a lone surrogate is not Unicode text).
            name = name[..(char.IsHighSurrogate(name[63]) ? 63 : 64)] + "...";
        }

        return $"duplicate name: '{name}' appears twice in one object";
    }

    /// <summary>
    /// <see cref="DescribeMalformedJson(JsonException)"/> for an exception met while reading <paramref name="json"/>,
    /// but a name given twice is found in <paramref name="json"/> itself and shown whole (up to 64 characters, as
    /// <see cref="DuplicateName"/> cuts it): System.Text.Json cuts the names it reports to 15 characters and "...",
    /// which MessagePack's check does not. Throws <see cref="ArgumentNullException"/> when <paramref name="exception"/>
    /// is null.
    /// </summary>
    public static string DescribeMalformedJson(JsonException exception, ReadOnlySpan<byte> json)
    {
        var described = DescribeMalformedJson(exception);
        if (!described.StartsWith(DuplicateNameStart + "'", StringComparison.Ordinal) || FirstRepeatedName(json) is not { } name)
        {
            return described;
        }

        return exception.BytePositionInLine is { } position
            ? $"{DuplicateName(name)} (line {exception.LineNumber + 1}, byte {position + 1})"
            : DuplicateName(name);
    }

    // The first name (escapes undone) given twice in one object of json, in reading order; null when there is none
    // or the text cannot be read that far.
    private static string? FirstRepeatedName(ReadOnlySpan<byte> json)
    {
        var objects = new Stack<HashSet<string>?>();
        try
        {
            var reader = new Utf8JsonReader(json, new JsonReaderOptions { MaxDepth = 256 });
            while (reader.Read())
            {
                switch (reader.TokenType)
                {
                    case JsonTokenType.StartObject:
                        objects.Push(new HashSet<string>(StringComparer.Ordinal));
                        break;
                    case JsonTokenType.StartArray:
                        objects.Push(null);
                        break;
                    case JsonTokenType.EndObject or JsonTokenType.EndArray:
                        objects.Pop();
                        break;
                    case JsonTokenType.PropertyName when reader.GetString() is { } name && !objects.Peek()!.Add(name):
                        return name;
                }
            }
        }
        catch (Exception ex) when (ex is JsonException or InvalidOperationException)
        {
            // Malformed further on, or a name escaping a lone surrogate: the name System.Text.Json reported stands.
        }

        return null;
    }

    [GeneratedRegex("^Duplicate property '(.*)' encountered during deserialization", RegexOptions.CultureInvariant | RegexOptions.Singleline)]
    private static partial Regex DuplicateProperty();

    /// <summary>
    /// <paramref name="described"/> (<see cref="DescribeMalformedJson(JsonException)"/>) after <paramref name="prefix"/>, but a name
    /// given twice as it is: the same sentence for JSON and MessagePack.
    /// </summary>
    public static string Prefixed(string prefix, string described) =>
        described.StartsWith(DuplicateNameStart, StringComparison.Ordinal) ? described : prefix + described;

    private const string DuplicateNameStart = "duplicate name: ";

    // The fault a System.Text.Json reader or document exception reports, in our words.
    private static string JsonFault(string message)
    {
        foreach (var (pattern, fault) in JsonFaultTable.Rows)
        {
            var match = pattern.Match(message);
            if (match.Success)
            {
                var text = match.Result(fault);
                // A name given twice: one wording for both formats, the name cut as DuplicateName cuts it.
                return text.StartsWith(DuplicateNameStart + "'", StringComparison.Ordinal) ? DuplicateName(match.Groups[1].Value) : text;
            }
        }

        return "the text is not well-formed JSON";
    }

    /// <summary>
    /// System.Text.Json's sentences (its resources, in English: the runtime ships no others) and what each says in
    /// ours; the character a sentence quotes is kept ('{0}' there, $1 here). Made on the first malformed text, not
    /// with the type (whose checks run on every message).
    /// </summary>
    private static class JsonFaultTable
    {
        public static readonly (Regex Pattern, string Fault)[] Rows =
        [
            (Fault("The input does not contain any JSON tokens"), "there is no JSON value (the text is empty or blank)"),
            (Fault("The input does not contain any complete JSON tokens"), "the JSON value is incomplete"),
            (Fault("'(.+)' is invalid after a single JSON value"), "'$1' follows the end of the JSON value"),
            (Fault("'(.+)' is an invalid end of a number"), "a number must be followed by ',', '}', ']' or a space (at '$1')"),
            (Fault("'(.+)' is an invalid JSON literal. Expected the literal '(\\w+)'"), "'$1' is not the literal $2"),
            (Fault("'(.+)' is invalid after a property name"), "expected ':' after a name, found '$1'"),
            (Fault("'(.+)' is an invalid start of a property name or value, after a comment"), "comments are not JSON"),
            (Fault("'(.+)' is invalid after '/' at the beginning of the comment"), "comments are not JSON"),
            (Fault("Expected end of comment, but instead reached end of data"), "comments are not JSON"),
            (Fault("'(.+)' is an invalid start of a property name"), "expected a name in double quotes, found '$1'"),
            (Fault("Expected start of a property name or value, but instead reached end of data"), "the text ends where a name or value should follow"),
            (Fault("Expected a value, but instead reached end of data"), "the text ends where a value should follow"),
            (Fault("'(.+)' is an invalid start of a value"), "'$1' cannot start a value"),
            (Fault("'(.+)' is invalid after a value"), "expected ',', '}' or ']' after a value, found '$1'"),
            (Fault("'(.+)' is an invalid escapable character within a JSON string"), "'\\$1' is not a JSON escape"),
            (Fault("'(.+)' is invalid within a JSON string"), "'$1' must be escaped in a string"),
            (Fault("'(.+)' is not a hex digit following '\\\\u' within a JSON string"), "'$1' is not a hex digit of a \\u escape"),
            (Fault("Expected end of string, but instead reached end of data"), "a string is not closed"),
            (Fault("'(.+)' is invalid without a matching open"), "'$1' closes nothing that is open"),
            (Fault("'(.+)' is an invalid token type for the end of the JSON payload"), "an object or array is not closed"),
            (Fault("Expected depth to be zero at the end of the JSON payload"), "an object or array is not closed"),
            (Fault("Invalid leading zero before '(.+)'"), "a number starts with 0 followed by '$1'"),
            (Fault("'(.+)' is invalid within a number, immediately after a decimal point"), "expected a digit after '.', found '$1'"),
            (Fault("'(.+)' is invalid within a number, immediately after a sign character"), "expected a digit after the sign, found '$1'"),
            (Fault("Expected a digit \\('0'-'9'\\), but instead reached end of data"), "the text ends inside a number"),
            (Fault("The maximum configured depth of (\\d+) has been exceeded"), "the value nests deeper than $1 levels"),
            (Fault("The JSON array contains a trailing comma"), "a comma before ']' (trailing commas are not JSON)"),
            (Fault("The JSON object contains a trailing comma"), "a comma before '}' (trailing commas are not JSON)"),
            (Fault("The JSON (?:property name|value) of length (\\d+) is too large"), "a string of $1 bytes is too long"),
            (Fault("Duplicate property '(.*)' encountered during deserialization"), DuplicateNameStart + "'$1' appears twice in one object"),
            (Fault("Duplicate properties not allowed"), DuplicateNameStart + "a name appears twice in one object"),
        ];

        private static Regex Fault(string sentenceStart) => new("^" + sentenceStart, RegexOptions.CultureInvariant | RegexOptions.Singleline);
    }

    /// <summary>
    /// True when <paramref name="json"/> may be stored as a JSON payload: exactly one JSON value, nested at most
    /// <see cref="MaxDepth"/> levels, every string Unicode text (<see cref="UnicodeText"/>), every number within
    /// float64's range. One reader pass, no allocation: it runs on every message read off the stream. Names are not
    /// checked here: a backend's body with a name twice goes to MessagePack members as binary (the encoder refuses it,
    /// <see cref="WriteJsonAsMessagePack"/>).
    /// </summary>
    public static bool IsValidJson(ReadOnlyMemory<byte> json) => Check(json.Span, stringsChecked: false, uniqueNames: false, out _) is null;

    /// <summary>
    /// Why a client's JSON payload is refused, or null when it may be stored: the rules of <see cref="IsValidJson"/>,
    /// and no name twice in an object (so every client payload reaches every format). Never throws.
    /// </summary>
    /// <param name="json">The payload: UTF-8 JSON text.</param>
    /// <param name="stringsChecked">True when the caller already checked every string of these bytes as Unicode text
    /// (<see cref="UnicodeText.HasOnlyUnicodeStrings"/>), so it is not done twice.</param>
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
            return Prefixed("malformed JSON payload: ", DescribeMalformedJson(ex, json.Span));
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
            return UnicodeText.Describe(json);
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
                                return DuplicateName(Encoding.UTF8.GetString(name));
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
            return Prefixed("malformed JSON payload: ", DescribeMalformedJson(ex));
        }
    }

    /// <summary>
    /// Writes the JSON value <paramref name="json"/> as one MessagePack value. Throws <see cref="JsonException"/> on
    /// malformed JSON or a name twice in one object, and <see cref="FormatException"/> on a number beyond float64's
    /// range: callers pass checked payloads (<see cref="CheckJson"/>), and the gateway treats a throw as "send this
    /// message as binary".
    /// </summary>
    /// <param name="json">The JSON value, UTF-8.</param>
    /// <param name="writer">Where its MessagePack form is written.</param>
    /// <param name="stringsChecked">True when the caller already checked every string of these bytes as Unicode text
    /// (<see cref="UnicodeText.HasOnlyUnicodeStrings"/>, as <see cref="IsValidJson"/> does), so it is not done twice.</param>
    public static void WriteJsonAsMessagePack(ReadOnlyMemory<byte> json, ref MessagePackWriter writer, bool stringsChecked = false)
    {
        // A value that is well-formed, with its names compared as it goes (nearly every payload): written in one reader
        // pass, without a document or strings (a replay to a MessagePack client transcodes every message:
        // docs/benchmarks.md, "MessagePack replay transcoding (issue 14)"). Anything else is read as a document, which
        // throws (or, for names the pass cannot compare, writes it).
        if ((stringsChecked || UnicodeText.HasOnlyUnicodeStrings(json.Span)) && TryStreamJsonAsMessagePack(json.Span, ref writer))
        {
            return;
        }

        using var document = JsonDocument.Parse(json, UniqueNames);
        WriteElement(document.RootElement, ref writer);
    }

    // The header of a map32 and of an array32 with a count of 0: a container's placeholder until its count is known.
    private static ReadOnlySpan<byte> Map32Placeholder => [MessagePackCode.Map32, 0, 0, 0, 0];

    private static ReadOnlySpan<byte> Array32Placeholder => [MessagePackCode.Array32, 0, 0, 0, 0];

    // A thread's scratch for the one-pass transcoding: kept between payloads unless a large one grew it.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_scratch;

    private const int KeptScratch = 64 * 1024;

    /// <summary>
    /// Writes a JSON value as MessagePack in one reader pass, checking it as <see cref="Check"/> does with names
    /// compared: into a scratch buffer with a placeholder header for each container (a MessagePack map or array starts
    /// with its count, known only at its end), then to <paramref name="target"/> with each container's shortest header
    /// in its place, so the bytes are those of the document path. False, with nothing written to
    /// <paramref name="target"/>, for a value this pass refuses or cannot decide (an escaped name, more names than it
    /// compares): the caller reads it as a document.
    /// </summary>
    private static bool TryStreamJsonAsMessagePack(ReadOnlySpan<byte> json, ref MessagePackWriter target)
    {
        var scratch = t_scratch ??= new ArrayBufferWriter<byte>(256);
        scratch.ResetWrittenCount();
        // Each container in the order it opens: where its placeholder is in scratch, then its count of entries.
        int[]? rented = null;
        Span<int> containers = stackalloc int[128];
        // The container open at each depth (its index in containers), and whether it is an object (its entries are names).
        Span<int> open = stackalloc int[MaxDepth + 1];
        Span<bool> isObject = stackalloc bool[MaxDepth + 1];
        // Each name as (start, length) in json; firstName[d] is where the names of the object opened at depth d begin.
        Span<int> nameStart = stackalloc int[ComparedNames];
        Span<int> nameLength = stackalloc int[ComparedNames];
        Span<int> firstName = stackalloc int[MaxDepth + 1];
        var names = 0;
        var count = 0;
        try
        {
            var writer = new MessagePackWriter(scratch);
            var reader = new Utf8JsonReader(json, ReaderOptions);
            if (!reader.Read())
            {
                return false;
            }

            // The reader checks structure and depth as it goes (and throws on a truncated value).
            while (true)
            {
                var depth = reader.CurrentDepth;
                var type = reader.TokenType;
                if (type == JsonTokenType.EndObject)
                {
                    names = firstName[depth];
                }
                else if (type != JsonTokenType.EndArray)
                {
                    // An entry of its container: a name in an object, a value in an array (an object's values are not counted).
                    if (depth > 0 && (type == JsonTokenType.PropertyName) == isObject[depth - 1])
                    {
                        containers[(open[depth - 1] * 2) + 1]++;
                    }

                    if (!TryWriteToken(ref reader, ref writer, json, ref names, nameStart, nameLength, firstName))
                    {
                        return false;
                    }

                    if (type is JsonTokenType.StartObject or JsonTokenType.StartArray)
                    {
                        if (count * 2 == containers.Length)
                        {
                            var larger = ArrayPool<int>.Shared.Rent(containers.Length * 2);
                            containers.CopyTo(larger);
                            if (rented is not null)
                            {
                                ArrayPool<int>.Shared.Return(rented);
                            }

                            rented = larger;
                            containers = larger;
                        }

                        writer.Flush();
                        containers[count * 2] = scratch.WrittenCount;
                        containers[(count * 2) + 1] = 0;
                        open[depth] = count++;
                        isObject[depth] = type == JsonTokenType.StartObject;
                        writer.WriteRaw(type == JsonTokenType.StartObject ? Map32Placeholder : Array32Placeholder);
                    }
                }

                // A scalar at the top, or the top container's end, ends the value.
                if (depth == 0 && type is not (JsonTokenType.StartObject or JsonTokenType.StartArray))
                {
                    break;
                }

                reader.Read();
            }

            if (reader.Read())
            {
                return false; // data after the value
            }

            writer.Flush();
            var bytes = scratch.WrittenSpan;
            // Each placeholder gives way to its container's shortest header (as MessagePackWriter writes them).
            var size = bytes.Length;
            for (var i = 0; i < count; i++)
            {
                size -= Map32Placeholder.Length - HeaderLength(containers[(i * 2) + 1]);
            }

            var output = target.GetSpan(size);
            var from = 0;
            var to = 0;
            for (var i = 0; i < count; i++)
            {
                var at = containers[i * 2];
                bytes[from..at].CopyTo(output[to..]);
                to += at - from;
                to += WriteHeader(output[to..], bytes[at] == MessagePackCode.Map32, containers[(i * 2) + 1]);
                from = at + Map32Placeholder.Length;
            }

            bytes[from..].CopyTo(output[to..]);
            target.Advance(size);
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<int>.Shared.Return(rented);
            }

            if (scratch.Capacity > KeptScratch)
            {
                t_scratch = null;
            }
        }
    }

    private static int HeaderLength(int count) => count <= 15 ? 1 : count <= ushort.MaxValue ? 3 : 5;

    // A map's or array's header of count entries, in its shortest form: fixmap/fixarray, map16/array16 or map32/array32.
    private static int WriteHeader(Span<byte> output, bool map, int count)
    {
        if (count <= 15)
        {
            output[0] = (byte)((map ? MessagePackCode.MinFixMap : MessagePackCode.MinFixArray) | count);
            return 1;
        }

        if (count <= ushort.MaxValue)
        {
            output[0] = map ? MessagePackCode.Map16 : MessagePackCode.Array16;
            BinaryPrimitives.WriteUInt16BigEndian(output[1..], (ushort)count);
            return 3;
        }

        output[0] = map ? MessagePackCode.Map32 : MessagePackCode.Array32;
        BinaryPrimitives.WriteUInt32BigEndian(output[1..], (uint)count);
        return 5;
    }

    /// <summary>
    /// Writes the reader's token (a container's start writes nothing: its caller writes the placeholder), comparing a
    /// name with the names before it in its object. False for a name twice, a name it cannot compare (escaped, or
    /// beyond <see cref="ComparedNames"/>), or a number beyond float64's range.
    /// </summary>
    private static bool TryWriteToken(ref Utf8JsonReader reader, ref MessagePackWriter writer, ReadOnlySpan<byte> json,
        ref int names, scoped Span<int> nameStart, scoped Span<int> nameLength, scoped Span<int> firstName)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.StartObject:
                firstName[reader.CurrentDepth] = names;
                return true;
            case JsonTokenType.PropertyName:
                if (reader.ValueIsEscaped || names == ComparedNames)
                {
                    return false;
                }

                // A name's token starts at its opening quote; unescaped, its bytes are its value.
                var start = (int)reader.TokenStartIndex + 1;
                var name = json.Slice(start, reader.ValueSpan.Length);
                for (var i = firstName[reader.CurrentDepth - 1]; i < names; i++)
                {
                    if (json.Slice(nameStart[i], nameLength[i]).SequenceEqual(name))
                    {
                        return false;
                    }
                }

                nameStart[names] = start;
                nameLength[names] = name.Length;
                names++;
                writer.WriteString(name);
                return true;
            case JsonTokenType.String:
                WriteText(ref reader, ref writer);
                return true;
            case JsonTokenType.Number:
                if (reader.TryGetInt64(out var l))
                {
                    writer.Write(l);
                }
                else if (reader.TryGetUInt64(out var ul))
                {
                    writer.Write(ul);
                }
                else if (reader.TryGetDouble(out var d) && double.IsFinite(d))
                {
                    writer.Write(d);
                }
                else
                {
                    return false;
                }

                return true;
            case JsonTokenType.True:
                writer.Write(true);
                return true;
            case JsonTokenType.False:
                writer.Write(false);
                return true;
            case JsonTokenType.Null:
                writer.WriteNil();
                return true;
            default:
                return true; // StartArray
        }
    }

    /// <summary>A string or name as MessagePack str: its UTF-8 bytes as they are, unescaped first when they need it.</summary>
    private static void WriteText(ref Utf8JsonReader reader, ref MessagePackWriter writer)
    {
        if (!reader.ValueIsEscaped)
        {
            writer.WriteString(reader.ValueSpan);
            return;
        }

        // Unescaped text is never longer than its escaped form.
        var buffer = ArrayPool<byte>.Shared.Rent(reader.ValueSpan.Length);
        try
        {
            writer.WriteString(buffer.AsSpan(0, reader.CopyString(buffer)));
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
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
                    // Checked at the edge; a stored body is checked when read. Never write Infinity.
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
    /// Why a client's MessagePack payload is refused, or null when it may be stored as it is: exactly one value, nested
    /// at most <see cref="MaxDepth"/> levels, every <c>str</c> Unicode text, map keys <c>str</c> and unique within their
    /// map, no NaN or ±Infinity, timestamps (extension -1) well-formed (4, 8 or 12 bytes, nanoseconds below 10⁹). Other
    /// extension types are allowed (JSON members get them as <c>{"$ext", "$data"}</c>). Never throws.
    /// </summary>
    public static string? CheckMessagePack(ReadOnlyMemory<byte> value)
    {
        var reader = new MessagePackReader(value);
        return CheckMessagePack(ref reader) ?? (reader.End ? null : "unexpected data after the MessagePack value");
    }

    /// <summary>
    /// Reads one MessagePack value from <paramref name="reader"/>, checking it by the rules of
    /// <see cref="CheckMessagePack(ReadOnlyMemory{byte})"/>; returns why it is refused, or null. Never throws: a
    /// truncated or malformed value is a refusal too (the reader is then left at an unspecified position).
    /// </summary>
    public static string? CheckMessagePack(ref MessagePackReader reader) => Walk(ref reader, strict: true);

    /// <summary>
    /// True when <paramref name="value"/> may be stored and delivered as a MessagePack payload: exactly one value,
    /// nested at most <see cref="MaxDepth"/> levels, every <c>str</c> Unicode text, timestamps well-formed. The cheaper read of every message
    /// off the stream: a backend's value that has no JSON form (a non-<c>str</c> key, NaN) still reaches MessagePack
    /// members as stored, and JSON members as binary (<see cref="WriteMessagePackAsJson"/> throws on it).
    /// </summary>
    public static bool IsValidMessagePack(ReadOnlyMemory<byte> value)
    {
        if (value.IsEmpty)
        {
            return false;
        }

        var reader = new MessagePackReader(value);
        return Walk(ref reader, strict: false) is null && reader.End;
    }

    /// <summary>
    /// What is wrong with malformed MessagePack, for an error's message, in Bridge's own words: for the exceptions
    /// <see cref="MessagePackReader"/> throws on bytes (truncated data, a length beyond the data, a type code where
    /// another kind of value must be). A <see cref="FormatException"/>'s message is Bridge's own and is returned as it
    /// is. Throws <see cref="ArgumentNullException"/> when <paramref name="exception"/> is null.
    /// </summary>
    public static string DescribeMalformedMessagePack(Exception exception)
    {
        ArgumentNullException.ThrowIfNull(exception);
        return exception switch
        {
            FormatException => exception.Message,
            EndOfStreamException or ArgumentOutOfRangeException or OverflowException =>
                "the data ends inside a value, or a length claims more bytes than there are",
            _ => "a type code that is not valid where it is",
        };
    }

    private static string? Walk(ref MessagePackReader reader, bool strict)
    {
        try
        {
            WalkValue(ref reader, strict, 0);
            return null;
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or FormatException
                                       or OverflowException or InvalidOperationException or ArgumentException)
        {
            return ex is FormatException ? ex.Message : $"malformed MessagePack payload: {DescribeMalformedMessagePack(ex)}";
        }
    }

    private static void WalkValue(ref MessagePackReader reader, bool strict, int depth)
    {
        switch (reader.NextMessagePackType)
        {
            case MessagePackType.String:
                UnicodeText.SkipString(ref reader);
                break;
            case MessagePackType.Float when strict:
                if (!double.IsFinite(reader.ReadDouble()))
                {
                    throw new FormatException(NotFinite);
                }

                break;
            case MessagePackType.Array:
                CheckDepth(depth);
                var length = reader.ReadArrayHeader();
                for (var i = 0; i < length; i++)
                {
                    WalkValue(ref reader, strict, depth + 1);
                }

                break;
            case MessagePackType.Map:
                CheckDepth(depth);
                WalkMap(ref reader, strict, depth);
                break;
            case MessagePackType.Extension:
                // Timestamps in both reads: a malformed one has no form in either format (a MessagePack decoder throws on
                // it, JSON would see an unexplained {"$ext"}), so a backend's body with one is not a MessagePack value.
                var header = reader.ReadExtensionFormatHeader();
                var data = reader.ReadRaw(header.Length);
                if (header.TypeCode == TimestampExtension && !TryReadTimestamp(data, out _, out _))
                {
                    throw new FormatException("a MessagePack timestamp must have 4, 8 or 12 bytes and nanoseconds below 10^9");
                }

                break;
            case MessagePackType.Unknown:
                throw new FormatException("malformed MessagePack payload: a reserved type code");
            default:
                reader.Skip(); // a scalar: nil, bool, integer, float, bin, extension (never recurses)
                break;
        }
    }

    private static void WalkMap(ref MessagePackReader reader, bool strict, int depth)
    {
        var entries = reader.ReadMapHeader();
        if (!strict)
        {
            for (var i = 0; i < entries * 2; i++)
            {
                WalkValue(ref reader, strict, depth + 1);
            }

            return;
        }

        // Keys are compared as bytes: a MessagePack str has one spelling, unlike JSON's escapes.
        var keys = entries > 1 ? ArrayPool<ReadOnlyMemory<byte>>.Shared.Rent(entries) : null;
        try
        {
            for (var i = 0; i < entries; i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String)
                {
                    throw new FormatException(KeyNotString);
                }

                var key = UnicodeText.ReadStringBytes(ref reader);
                if (keys is not null)
                {
                    keys[i] = key;
                }

                WalkValue(ref reader, strict, depth + 1);
            }

            if (keys is not null && Duplicate(keys.AsSpan(0, entries)) is { } twice)
            {
                throw new FormatException(DuplicateName(Encoding.UTF8.GetString(twice.Span)));
            }
        }
        finally
        {
            if (keys is not null)
            {
                Array.Clear(keys, 0, entries);
                ArrayPool<ReadOnlyMemory<byte>>.Shared.Return(keys);
            }
        }
    }

    // A key given twice in keys, or null.
    private static ReadOnlyMemory<byte>? Duplicate(Span<ReadOnlyMemory<byte>> keys)
    {
        if (keys.Length <= 16)
        {
            for (var i = 1; i < keys.Length; i++)
            {
                for (var j = 0; j < i; j++)
                {
                    if (keys[i].Span.SequenceEqual(keys[j].Span))
                    {
                        return keys[i];
                    }
                }
            }

            return null;
        }

        keys.Sort(static (a, b) => a.Span.SequenceCompareTo(b.Span));
        for (var i = 1; i < keys.Length; i++)
        {
            if (keys[i].Span.SequenceEqual(keys[i - 1].Span))
            {
                return keys[i];
            }
        }

        return null;
    }

    private static void CheckDepth(int depth)
    {
        if (depth >= MaxDepth)
        {
            throw new FormatException($"payload nests deeper than {MaxDepth} levels");
        }
    }

    /// <summary>
    /// Reads one MessagePack value and writes it as JSON (the rendering in the summary of this type). Containers may
    /// nest <paramref name="maxDepth"/> levels (default <see cref="MaxDepth"/>). Throws <see cref="FormatException"/>
    /// when the value has no JSON form (a non-<c>str</c> key, NaN, ±Infinity, a <c>str</c> that is not UTF-8, deeper
    /// nesting), and MessagePack's own exceptions when it is truncated or malformed. Never throws for a value
    /// <see cref="CheckMessagePack(ReadOnlyMemory{byte})"/> accepted. With <paramref name="wholeFloatsAsReal"/>, a
    /// float whose value is whole is written as its shortest round-trip text with <c>.0</c> added only when that text
    /// has neither a fraction nor an exponent: 1 as <c>1.0</c>, -0 as <c>-0.0</c>, 10^16 as
    /// <c>10000000000000000.0</c>, 10^17 as <c>1E+17</c> (already not an integer to a JSON reader); other floats are
    /// written as without it. The flag is for arguments read from the rendering, so that an integer argument refuses
    /// MessagePack <c>1.0</c> as it refuses JSON <c>1.0</c> (docs/protocol.md §8); rendered payloads must not use it
    /// (their JSON rendering of a whole float stays <c>1</c>).
    /// </summary>
    public static void WriteMessagePackAsJson(ref MessagePackReader reader, Utf8JsonWriter writer, int maxDepth = MaxDepth, bool wholeFloatsAsReal = false)
    {
        ArgumentNullException.ThrowIfNull(writer);
        WriteAsJson(ref reader, writer, maxDepth, 0, wholeFloatsAsReal);
    }

    /// <summary>
    /// The JSON rendering of the one MessagePack value <paramref name="value"/>, as UTF-8 bytes; throws as
    /// <see cref="WriteMessagePackAsJson"/> does, and <see cref="FormatException"/> on data after the value;
    /// <paramref name="wholeFloatsAsReal"/> as there.
    /// </summary>
    public static byte[] MessagePackToJson(ReadOnlyMemory<byte> value, int maxDepth = MaxDepth, bool wholeFloatsAsReal = false)
    {
        var buffer = new ArrayBufferWriter<byte>(Math.Max(16, value.Length * 2));
        using (var writer = new Utf8JsonWriter(buffer))
        {
            var reader = new MessagePackReader(value);
            WriteAsJson(ref reader, writer, maxDepth, 0, wholeFloatsAsReal);
            if (!reader.End)
            {
                throw new FormatException("unexpected data after the MessagePack value");
            }
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteAsJson(ref MessagePackReader reader, Utf8JsonWriter writer, int maxDepth, int depth, bool wholeFloatsAsReal)
    {
        if (depth >= maxDepth && reader.NextMessagePackType is MessagePackType.Array or MessagePackType.Map)
        {
            throw new FormatException($"payload nests deeper than {maxDepth} levels");
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
                    throw new FormatException(NotFinite);
                }

                if (wholeFloatsAsReal)
                {
                    WriteAsReal(writer, d);
                }
                else
                {
                    writer.WriteNumberValue(d);
                }

                break;
            case MessagePackType.String:
                writer.WriteStringValue(UnicodeText.ReadStringBytes(ref reader).Span);
                break;
            case MessagePackType.Binary:
                var bytes = reader.ReadBytes() ?? default;
                writer.WriteBase64StringValue(bytes.IsSingleSegment ? bytes.FirstSpan : bytes.ToArray());
                break;
            case MessagePackType.Array:
                var length = reader.ReadArrayHeader();
                writer.WriteStartArray();
                for (var i = 0; i < length; i++)
                {
                    WriteAsJson(ref reader, writer, maxDepth, depth + 1, wholeFloatsAsReal);
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
                        throw new FormatException(KeyNotString);
                    }

                    writer.WritePropertyName(UnicodeText.ReadStringBytes(ref reader).Span);
                    WriteAsJson(ref reader, writer, maxDepth, depth + 1, wholeFloatsAsReal);
                }

                writer.WriteEndObject();
                break;
            case MessagePackType.Extension:
                WriteExtension(ref reader, writer);
                break;
            default:
                throw new FormatException("malformed MessagePack payload: a reserved type code");
        }
    }

    private static readonly SearchValues<byte> IntegerText = SearchValues.Create("-0123456789"u8);

    // A whole float as JSON with a fraction or an exponent: its shortest text ("1E+15" has an exponent), with ".0"
    // added when that is digits only. Utf8JsonWriter would write 1e15 as digits only, so a whole value never goes to it.
    private static void WriteAsReal(Utf8JsonWriter writer, double value)
    {
        Span<byte> text = stackalloc byte[40];
        if (!double.IsInteger(value) || !Utf8Formatter.TryFormat(value, text, out var length))
        {
            writer.WriteNumberValue(value);
            return;
        }

        if (text[..length].IndexOfAnyExcept(IntegerText) < 0)
        {
            ".0"u8.CopyTo(text[length..]);
            length += 2;
        }

        writer.WriteRawValue(text[..length], skipInputValidation: true);
    }

    private static void WriteExtension(ref MessagePackReader reader, Utf8JsonWriter writer)
    {
        var header = reader.ReadExtensionFormatHeader();
        var data = reader.ReadRaw(header.Length);
        if (header.TypeCode == TimestampExtension && TryReadTimestamp(data, out var seconds, out var nanoseconds) &&
            seconds is >= MinRenderedSeconds and <= MaxRenderedSeconds)
        {
            Span<char> text = stackalloc char[40];
            writer.WriteStringValue(FormatTimestamp(seconds, nanoseconds, text));
            return;
        }

        writer.WriteStartObject();
        writer.WriteNumber(ExtKey, header.TypeCode);
        writer.WriteBase64String(ExtDataKey, data.IsSingleSegment ? data.FirstSpan : data.ToArray());
        writer.WriteEndObject();
    }

    private static ReadOnlySpan<char> FormatTimestamp(long seconds, uint nanoseconds, Span<char> text)
    {
        var time = DateTime.UnixEpoch.AddSeconds(seconds);
        time.TryFormat(text, out var written, "yyyy-MM-dd'T'HH:mm:ss", CultureInfo.InvariantCulture);
        if (nanoseconds > 0)
        {
            // RFC 3339 fractional seconds, at most nine digits, trailing zeros left out.
            text[written++] = '.';
            nanoseconds.TryFormat(text[written..], out _, "D9", CultureInfo.InvariantCulture);
            var digits = 9;
            while (text[written + digits - 1] == '0')
            {
                digits--;
            }

            written += digits;
        }

        text[written++] = 'Z';
        return text[..written];
    }

    /// <summary>The MessagePack timestamp's three forms (32, 64 and 96 bits), as the specification defines them.</summary>
    private static bool TryReadTimestamp(ReadOnlySequence<byte> data, out long seconds, out uint nanoseconds)
    {
        Span<byte> bytes = stackalloc byte[12];
        seconds = 0;
        nanoseconds = 0;
        if (data.Length is not (4 or 8 or 12))
        {
            return false;
        }

        data.CopyTo(bytes);
        switch (data.Length)
        {
            case 4:
                seconds = BinaryPrimitives.ReadUInt32BigEndian(bytes);
                return true;
            case 8:
                var packed = BinaryPrimitives.ReadUInt64BigEndian(bytes);
                nanoseconds = (uint)(packed >> 34);
                seconds = (long)(packed & 0x3_FFFF_FFFFUL);
                break;
            default:
                nanoseconds = BinaryPrimitives.ReadUInt32BigEndian(bytes);
                seconds = BinaryPrimitives.ReadInt64BigEndian(bytes[4..]);
                break;
        }

        return nanoseconds < 1_000_000_000;
    }

    /// <summary>
    /// Skips one MessagePack value with the depth limit of the converters (<see cref="MaxDepth"/>):
    /// <c>MessagePackReader.Skip</c> recurses without a limit, so a frame of nested one-byte arrays could exhaust the
    /// stack. Strings are checked as they are skipped: a frame is Unicode text wherever it has a str. Throws
    /// <see cref="FormatException"/> on deeper nesting or a str that is not UTF-8, and MessagePack's own exceptions
    /// on a truncated or malformed value.
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
