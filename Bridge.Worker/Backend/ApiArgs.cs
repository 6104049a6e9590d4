using System.Buffers;
using System.Text;
using System.Text.Json;
using Bridge.Contracts;
using Bridge.Worker.Handlers;
using Bridge.Worker.Protocol;
using MessagePack;

namespace Bridge.Worker.Backend;

/// <summary>
/// Reads a request's JSON object (or MessagePack map: <see cref="Parse"/>) field by field, each with its own rule, and refuses what breaks one with
/// <see cref="ErrorCodes.InvalidArgument"/> (or <see cref="ErrorCodes.InvalidRoom"/>, <see cref="ErrorCodes.MissingField"/>)
/// naming the field. Unknown fields are refused too (<see cref="EnsureNoOthers"/>): a typo must not be silently ignored.
/// Strings must be Unicode text (<see cref="UnicodeText"/>: UTF-8, no lone surrogates in escapes) without control characters.
/// </summary>
internal sealed class ApiArgs : IDisposable
{
    // The arguments are flat; nested values only occur in a payload, which the envelope decoder reads.
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64, AllowDuplicateProperties = false };

    private readonly JsonDocument _document;
    private readonly ReadOnlyMemory<byte> _body;
    private readonly WireFormat _format;
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    private ApiArgs(JsonDocument document, ReadOnlyMemory<byte> body, WireFormat format)
    {
        _document = document;
        _body = body;
        _format = format;
    }

    /// <summary>
    /// Parses the body, a JSON object or, in <see cref="WireFormat.MessagePack"/>, a MessagePack map with the same
    /// keys, whose values other than <c>payload</c> are read as their JSON rendering (<see cref="PayloadTranscoder"/>);
    /// <c>payload</c> is left to <see cref="Envelope"/>. An empty body (in JSON, or one of whitespace alone) is an empty object. With
    /// <paramref name="envelope"/> (publish, broadcast: the body is also a message's envelope), an envelope key given
    /// twice is refused in the words of a client's publish (<see cref="EnvelopeKeySet"/>).
    /// </summary>
    public static ApiArgs Parse(ReadOnlyMemory<byte> body, WireFormat format, bool envelope = false)
    {
        // The rule of every edge's body (FrameCodecs.IsEmptyBody): a JSON body of whitespace alone is empty too.
        if (FrameCodecs.IsEmptyBody(body.Span, format))
        {
            return new ApiArgs(JsonDocument.Parse("{}"u8.ToArray()), ReadOnlyMemory<byte>.Empty, format);
        }

        var json = format == WireFormat.MessagePack ? RenderMap(body, envelope) : body;
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, DocumentOptions);
        }
        catch (JsonException ex)
        {
            var described = PayloadTranscoder.DescribeMalformedJson(ex, json.Span);
            // A name twice: when it is an envelope key of the body itself, the words of a client's publish, which the
            // envelope decoder gives (it reads the top level only).
            if (envelope && described.StartsWith("duplicate name: ", StringComparison.Ordinal) &&
                JsonFrameCodec.Instance.Decode(json.Span, out var decodeError) is null &&
                decodeError.Message.StartsWith("duplicate name: envelope key ", StringComparison.Ordinal))
            {
                described = decodeError.Message;
            }

            throw ApiException.Invalid(ErrorCodes.BadFrame, PayloadTranscoder.Prefixed("malformed JSON: ", described));
        }
        catch (InvalidOperationException)
        {
            // A property name escaping a lone surrogate, met by the duplicate-name check while parsing.
            throw ApiException.Invalid(ErrorCodes.BadFrame, UnicodeText.Describe(json.Span));
        }

        // The rule for all text entering Bridge (issue 12), once for the whole body: every string, names and payload
        // included, is UTF-8 without lone surrogates.
        var isObject = document.RootElement.ValueKind == JsonValueKind.Object;
        if (!isObject || !UnicodeText.HasOnlyUnicodeStrings(json.Span))
        {
            document.Dispose();
            throw ApiException.Invalid(ErrorCodes.BadFrame, isObject ? UnicodeText.Describe(json.Span) : "the body must be a JSON object");
        }

        return new ApiArgs(document, body, format);
    }

    /// <summary>
    /// The JSON object of a MessagePack body's map: each key's value checked by the client rules
    /// (<see cref="PayloadTranscoder.CheckMessagePack(ReadOnlyMemory{byte})"/>) and written as its JSON rendering, but
    /// <c>payload</c>, written <c>null</c>: <see cref="Envelope"/> decodes it from the body, kept as sent.
    /// </summary>
    private static ReadOnlyMemory<byte> RenderMap(ReadOnlyMemory<byte> body, bool envelope)
    {
        var buffer = new ArrayBufferWriter<byte>(body.Length + 16);
        try
        {
            var reader = new MessagePackReader(body);
            if (reader.NextMessagePackType != MessagePackType.Map)
            {
                throw ApiException.Invalid(ErrorCodes.BadFrame, "the body must be a MessagePack map");
            }

            using var writer = new Utf8JsonWriter(buffer);
            writer.WriteStartObject();
            var entries = reader.ReadMapHeader();
            var keys = new HashSet<string>(StringComparer.Ordinal);
            for (var i = 0; i < entries; i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String)
                {
                    throw ApiException.Invalid(ErrorCodes.BadFrame, PayloadTranscoder.KeyNotString);
                }

                var key = UnicodeText.ReadString(ref reader);
                if (!keys.Add(key))
                {
                    throw ApiException.Invalid(ErrorCodes.BadFrame, envelope && EnvelopeKeySet.MessagePackKeyOf(key) is var known && known != EnvelopeKey.None
                        ? EnvelopeKeySet.DuplicateMessage(known)
                        : PayloadTranscoder.DuplicateName(key));
                }

                writer.WritePropertyName(key);
                if (key == EnvelopeKeys.Payload)
                {
                    PayloadTranscoder.Skip(ref reader);
                    writer.WriteNullValue();
                    continue;
                }

                var value = reader;
                if (PayloadTranscoder.CheckMessagePack(ref value) is { } problem)
                {
                    throw ApiException.Invalid(ErrorCodes.BadFrame, $"field '{Shorten(key)}': {problem}");
                }

                // A whole float stays a real number (1.0): integer fields refuse it, as JSON's 1.0.
                PayloadTranscoder.WriteMessagePackAsJson(ref reader, writer, wholeFloatsAsReal: true);
            }

            writer.WriteEndObject();
            if (!reader.End)
            {
                throw ApiException.Invalid(ErrorCodes.BadFrame, "unexpected data after the MessagePack map");
            }
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or FormatException
                                       or OverflowException or InvalidOperationException or ArgumentException)
        {
            // As the WebSocket codec words it: Bridge's own rule (FormatException) in the JSON body's words.
            throw ApiException.Invalid(ErrorCodes.BadFrame,
                ex is FormatException ? ex.Message : $"malformed MessagePack: {PayloadTranscoder.DescribeMalformedMessagePack(ex)}");
        }

        return buffer.WrittenMemory;
    }

    /// <summary>
    /// The envelope of a publish or broadcast (<c>type</c>, <c>id</c>, <c>payload</c>; <c>enc</c> in JSON), the last
    /// fields read: refuses the request when it has others (<see cref="EnsureNoOthers"/>), then reads the envelope from
    /// the body with the decoder of a client's frame in the body's format, and its checks: a MessagePack body's
    /// payload is kept as sent, a <c>bin</c> payload is binary.
    /// </summary>
    public InboundFrame Envelope()
    {
        Allow(EnvelopeKeys.Type, EnvelopeKeys.Id, EnvelopeKeys.Payload);
        if (_format == WireFormat.Json)
        {
            Allow(EnvelopeKeys.Enc);
        }

        EnsureNoOthers();
        return FrameCodecs.Of(_format).Decode(_body.Span, out var error)
            ?? throw ApiException.Invalid(ErrorCodes.BadFrame, error.Message);
    }

    public void Dispose() => _document.Dispose();

    /// <summary>Marks fields another reader handles (the envelope of a publish).</summary>
    public void Allow(params string[] names)
    {
        foreach (var name in names)
        {
            _read.Add(name);
        }
    }

    /// <summary>Refuses the request when it has a field no rule read.</summary>
    public void EnsureNoOthers()
    {
        foreach (var property in _document.RootElement.EnumerateObject())
        {
            if (!_read.Contains(property.Name))
            {
                throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"unknown field '{Shorten(property.Name)}'");
            }
        }
    }

    public string Room(string name = "room")
    {
        var room = Text(name, RoomName.MaxLength) ?? throw ApiException.Invalid(ErrorCodes.MissingField, $"field '{name}' is required");
        return RoomName.IsValid(room) ? room : throw ApiException.Invalid(ErrorCodes.InvalidRoom, RoomFrames.InvalidRoomMessage);
    }

    /// <summary>A user (a token's <c>sub</c>): the subjects tokens may carry (<see cref="Security.TokenValidator.IsValidSubject"/>).</summary>
    public string User() =>
        Subject("user") ?? throw ApiException.Invalid(ErrorCodes.MissingField, "field 'user' is required (a token's sub)");

    /// <summary>
    /// An optional user field (absent, null or empty: null), held to the rule of a token's <c>sub</c>
    /// (<see cref="Security.TokenValidator.IsValidSubject"/>), and refused in that rule's one wording whatever breaks it
    /// (length or a control character).
    /// </summary>
    public string? Subject(string name)
    {
        var user = String(name);
        if (string.IsNullOrEmpty(user))
        {
            return null;
        }

        return Security.TokenValidator.IsValidSubject(user)
            ? user
            : throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be {Security.TokenValidator.SubjectRule}, as a token's sub");
    }

    /// <summary>An optional string of at most <paramref name="maxUtf8Bytes"/> UTF-8 bytes without control characters.</summary>
    public string? Text(string name, int maxUtf8Bytes)
    {
        var text = String(name);
        if (text is not null && (Encoding.UTF8.GetByteCount(text) > maxUtf8Bytes || text.Any(char.IsControl)))
        {
            throw ApiException.Invalid(ErrorCodes.InvalidArgument,
                $"field '{name}' must be at most {maxUtf8Bytes} bytes of UTF-8 text without control characters");
        }

        return text;
    }

    /// <summary>An optional string field (absent or null: null); any other kind is refused.</summary>
    private string? String(string name)
    {
        if (!TryGet(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        // Valid Unicode: Parse checked every string of the body.
        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be a string");
    }

    public ulong? UInt64(string name)
    {
        if (!TryGet(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out var number)
            ? number
            : throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be an integer from 0 to {ulong.MaxValue}");
    }

    public int? Int(string name, int min, int max)
    {
        if (!TryGet(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number) && number >= min && number <= max
            ? number
            : throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be an integer from {min} to {max}");
    }

    /// <summary>A required array of 1 to <paramref name="max"/> distinct, valid room names.</summary>
    public List<string> Rooms(string name, int max)
    {
        if (!TryGet(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            throw ApiException.Invalid(ErrorCodes.MissingField, $"field '{name}' is required (an array of rooms)");
        }

        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() is 0 || value.GetArrayLength() > max)
        {
            throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be an array of 1 to {max} rooms");
        }

        var rooms = new List<string>(value.GetArrayLength());
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in value.EnumerateArray())
        {
            var room = item.ValueKind == JsonValueKind.String ? item.GetString() : null;
            if (!RoomName.IsValid(room))
            {
                throw ApiException.Invalid(ErrorCodes.InvalidRoom, $"{name}[{rooms.Count}]: {RoomFrames.InvalidRoomMessage}");
            }

            if (!seen.Add(room!))
            {
                throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"room '{room}' is listed twice in '{name}'");
            }

            rooms.Add(room!);
        }

        return rooms;
    }

    private bool TryGet(string name, out JsonElement value)
    {
        _read.Add(name);
        return _document.RootElement.TryGetProperty(name, out value);
    }

    private static string Shorten(string name)
    {
        var printable = new string([.. name.Take(64).Select(c => c is >= ' ' and <= '~' ? c : '?')]);
        return name.Length <= 64 ? printable : printable + "...";
    }
}
