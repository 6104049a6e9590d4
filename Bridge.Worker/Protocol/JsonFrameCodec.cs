using System.Buffers;
using System.Buffers.Text;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using Bridge.Contracts;
using Bridge.Worker.Rooms;

namespace Bridge.Worker.Protocol;

/// <summary>
/// <c>bridge.v1.json</c>: one JSON envelope per text frame; binary payloads as base64 with <c>enc: "base64"</c>,
/// MessagePack payloads as their JSON rendering (<see cref="PayloadTranscoder"/>).
/// </summary>
internal sealed class JsonFrameCodec : IFrameCodec
{
    public static readonly JsonFrameCodec Instance = new();

    // Envelope keys, pre-encoded once.
    private static readonly JsonEncodedText SeqKey = JsonEncodedText.Encode(EnvelopeKeys.Seq);
    private static readonly JsonEncodedText TsKey = JsonEncodedText.Encode(EnvelopeKeys.Ts);
    private static readonly JsonEncodedText FromKey = JsonEncodedText.Encode(EnvelopeKeys.From);
    private static readonly JsonEncodedText PayloadKey = JsonEncodedText.Encode(EnvelopeKeys.Payload);
    private static readonly JsonEncodedText EncKey = JsonEncodedText.Encode(EnvelopeKeys.Enc);
    private static readonly JsonEncodedText Base64 = JsonEncodedText.Encode(EnvelopeKeys.Base64);

    // The envelope object is one level; its payload may nest PayloadTranscoder.MaxDepth more.
    private static readonly JsonReaderOptions ReaderOptions = new() { MaxDepth = PayloadTranscoder.MaxDepth + 1 };

    private static readonly string FrameDepthFault = $"the value nests deeper than {PayloadTranscoder.MaxDepth + 1} levels";
    private static readonly string PayloadDepthFault = $"the payload nests deeper than {PayloadTranscoder.MaxDepth} levels";

    // Encoding happens on a room's reader thread or a connection's receive loop; one scratch buffer per thread
    // means no allocation but the final frame array.
    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    [ThreadStatic]
    private static Utf8JsonWriter? t_writer;

    private JsonFrameCodec()
    {
    }

    public WireFormat Format => WireFormat.Json;

    public string Subprotocol => Subprotocols.Json;

    public WebSocketMessageType MessageType => WebSocketMessageType.Text;

    public InboundFrame? Decode(ReadOnlySpan<byte> data, out DecodeError error)
    {
        string? type = null, room = null, id = null, enc = null;
        var payloadStart = -1;
        var payloadEnd = -1;
        var payloadIsString = false;
        try
        {
            var reader = new Utf8JsonReader(data, ReaderOptions);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                error = new DecodeError("frame must be a JSON object", null);
                return null;
            }

            // The keys read so far, one bit each: a key twice is refused, so that no reader in front of the worker
            // (first-wins) sees another type, room, enc or payload than what is stored.
            // Unknown keys by name (escapes undone): the same name twice is refused too.
            var seen = EnvelopeKey.None;
            HashSet<string>? unknown = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var key = KeyOf(ref reader);
                if (!EnvelopeKeySet.TryAdd(ref seen, key, id, out error)
                    || (key == EnvelopeKey.None && UnknownName(ref reader) is { } name && !EnvelopeKeySet.TryAddUnknown(ref unknown, name, id, out error)))
                {
                    return null;
                }

                switch (key)
                {
                    case EnvelopeKey.Payload:
                        reader.Read();
                        payloadStart = (int)reader.TokenStartIndex;
                        payloadIsString = reader.TokenType == JsonTokenType.String;
                        reader.Skip();
                        payloadEnd = (int)reader.BytesConsumed;
                        break;
                    case EnvelopeKey.Type:
                        type = ReadString(ref reader, EnvelopeKeys.Type);
                        break;
                    case EnvelopeKey.Room:
                        room = ReadString(ref reader, EnvelopeKeys.Room);
                        break;
                    case EnvelopeKey.Id:
                        id = ReadString(ref reader, EnvelopeKeys.Id);
                        break;
                    case EnvelopeKey.Enc:
                        enc = ReadString(ref reader, EnvelopeKeys.Enc);
                        break;
                    default:
                        // Unknown keys are skipped so newer clients can talk to older workers (each name once).
                        reader.Read();
                        reader.Skip();
                        break;
                }
            }

            if (reader.Read())
            {
                error = new DecodeError("unexpected data after the JSON object", id);
                return null;
            }

            // The reader passes string bytes through unchecked, and a binary frame was never checked as UTF-8 by
            // the WebSocket layer: every string of the frame is checked here, once, after the id is known, so the
            // client learns which frame was refused.
            if (!UnicodeText.HasOnlyUnicodeStrings(data))
            {
                error = new DecodeError(UnicodeText.Describe(data), id);
                return null;
            }
        }
        catch (JsonException ex)
        {
            // The reader's depth counts the envelope too: the limit is said as the payload's, as MessagePack frames and
            // docs/protocol.md say it (32 levels, not 33).
            var described = PayloadTranscoder.DescribeMalformedJson(ex).Replace(FrameDepthFault, PayloadDepthFault, StringComparison.Ordinal);
            error = new DecodeError(PayloadTranscoder.Prefixed("malformed JSON: ", described), id);
            return null;
        }
        catch (FieldKindException ex)
        {
            error = new DecodeError(ex.Message, id);
            return null;
        }
        catch (InvalidOperationException)
        {
            // An envelope field (type, room, id, enc) that is not Unicode text: GetString refuses to transcode it.
            error = new DecodeError(UnicodeText.Describe(data), id);
            return null;
        }

        var kind = PayloadKind.None;
        ReadOnlyMemory<byte> payload = default;
        if (payloadStart >= 0)
        {
            var raw = data[payloadStart..payloadEnd];
            if (enc is null)
            {
                kind = PayloadKind.Json;
                payload = raw.ToArray();
                // Its strings were checked with the whole frame's above.
                if (PayloadTranscoder.CheckJson(payload, stringsChecked: true) is { } problem)
                {
                    error = new DecodeError(problem, id);
                    return null;
                }
            }
            else if (enc == EnvelopeKeys.Base64 && payloadIsString)
            {
                var reader = new Utf8JsonReader(raw);
                reader.Read();
                if (!reader.TryGetBytesFromBase64(out var bytes))
                {
                    error = new DecodeError("payload is not valid base64", id);
                    return null;
                }

                kind = PayloadKind.Binary;
                payload = bytes;
            }
            else
            {
                error = new DecodeError("enc must be \"base64\" with a string payload", id);
                return null;
            }
        }

        error = default;
        return new InboundFrame { Type = type, Room = room, Id = id, PayloadKind = kind, Payload = payload };
    }

    // The envelope key the reader is on (escaped names too: ValueTextEquals unescapes), None for any other name.
    private static EnvelopeKey KeyOf(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.ValueTextEquals("payload"u8) ? EnvelopeKey.Payload
                : reader.ValueTextEquals("type"u8) ? EnvelopeKey.Type
                : reader.ValueTextEquals("room"u8) ? EnvelopeKey.Room
                : reader.ValueTextEquals("id"u8) ? EnvelopeKey.Id
                : reader.ValueTextEquals("enc"u8) ? EnvelopeKey.Enc
                : EnvelopeKey.None;
        }
        catch (InvalidOperationException)
        {
            // A name whose escapes do not undo (a lone surrogate) is no known key: the frame is refused after the
            // loop, where every string is checked, with the id read by then.
            return EnvelopeKey.None;
        }
    }

    /// <summary>
    /// An unknown key's name with its escapes undone, or null when it has none (a lone surrogate escape such as
    /// <c>"\ud800"</c>): such a name is not tracked, and the frame is refused where its text is checked, with its id.
    /// </summary>
    private static string? UnknownName(ref Utf8JsonReader reader)
    {
        try
        {
            return reader.GetString();
        }
        catch (InvalidOperationException)
        {
            return null;
        }
    }

    private static string? ReadString(ref Utf8JsonReader reader, string field)
    {
        reader.Read();
        return reader.TokenType switch
        {
            JsonTokenType.String => reader.GetString(),
            JsonTokenType.Null => null,
            _ => throw new FieldKindException($"field '{field}' must be a string"),
        };
    }

    // The pieces of a message frame after its start, as Utf8JsonWriter writes them (minimized).
    private static ReadOnlySpan<byte> IdPart => ",\"id\":\""u8;

    private static ReadOnlySpan<byte> SeqPart => ",\"seq\":"u8;

    private static ReadOnlySpan<byte> TsPart => ",\"ts\":"u8;

    private static ReadOnlySpan<byte> FromPart => ",\"from\":\""u8;

    private static ReadOnlySpan<byte> PayloadPart => ",\"payload\":"u8;

    // The frame start (`{"type":…,"room":…`) this thread wrote last, for that type and room string (by reference): a
    // replay frames one type in one room, so it is written once ("Replay, tenth pass (issue 14)").
    [ThreadStatic]
    private static string? t_startType;

    [ThreadStatic]
    private static string? t_startRoom;

    [ThreadStatic]
    private static byte[]? t_start;

    // Longer types or rooms are not remembered (as EnvelopeWriter's memo): rare, and the memo would keep them alive.
    private const int StartMaxLength = 256;

    public byte[] EncodeMessage(RoomMessage message)
    {
        // A checked JSON payload or none (every replayed or live message a backend stored as JSON): built straight into
        // the frame's array. Anything else (binary, MessagePack, a payload made elsewhere) goes through the writer.
        if (message.PayloadKind == PayloadKind.None || (message.PayloadKind == PayloadKind.Json && message.PayloadChecked && !message.Payload.IsEmpty))
        {
            return EncodePlain(message);
        }

        var writer = RentWriter(out var buffer);
        EnvelopeWriter.WriteStart(writer, message.Type, message.Room, message.Id);
        writer.WriteNumber(SeqKey, message.Seq);
        writer.WriteNumber(TsKey, message.Timestamp);
        if (message.From is not null)
        {
            writer.WriteString(FromKey, message.From);
        }

        switch (message.PayloadKind)
        {
            case PayloadKind.Json:
                writer.WritePropertyName(PayloadKey);
                // Validated when the message was read off the stream (PayloadChecked). A message made anywhere else is
                // checked as UTF-8 here, so a text frame that is not UTF-8 never leaves: the throw sends the message as
                // binary instead (RoomMessage.GetFrame).
                if (!message.PayloadChecked && !UnicodeText.IsUtf8(message.Payload.Span))
                {
                    throw new FormatException("the stored JSON payload is not UTF-8");
                }

                writer.WriteRawValue(message.Payload.Span, skipInputValidation: true);
                break;
            case PayloadKind.MessagePack:
                // The JSON rendering, made once per message (the frame is cached). A value without one (a backend's
                // NaN or non-str key) throws: the message then goes to JSON members as binary (RoomMessage.GetFrame).
                writer.WritePropertyName(PayloadKey);
                var reader = new MessagePack.MessagePackReader(message.Payload);
                PayloadTranscoder.WriteMessagePackAsJson(ref reader, writer);
                break;
            case PayloadKind.Binary:
                writer.WriteString(EncKey, Base64);
                writer.WriteBase64String(PayloadKey, message.Payload.Span);
                break;
        }

        writer.WriteEndObject();
        return Complete(writer, buffer);
    }

    /// <summary>
    /// A message frame with a JSON payload or none, written into an array of its final size: the bytes the writer path
    /// writes (the start by that path itself, the rest as Utf8JsonWriter writes each piece: numbers in their shortest
    /// decimal form, strings escaped by the default encoder), without the thread's buffer and the copy out of it.
    /// </summary>
    private static byte[] EncodePlain(RoomMessage message)
    {
        var start = StartOf(message.Type, message.Room);
        var id = message.Id is null ? default : JsonEncodedText.Encode(message.Id).EncodedUtf8Bytes;
        var from = message.From is null ? default : JsonEncodedText.Encode(message.From).EncodedUtf8Bytes;
        Span<byte> seq = stackalloc byte[20];
        Utf8Formatter.TryFormat(message.Seq, seq, out var seqLength);
        Span<byte> ts = stackalloc byte[20];
        Utf8Formatter.TryFormat(message.Timestamp, ts, out var tsLength);
        var payload = message.Payload.Span;
        var length = start.Length + SeqPart.Length + seqLength + TsPart.Length + tsLength + 1 +
                     (message.Id is null ? 0 : IdPart.Length + id.Length + 1) +
                     (message.From is null ? 0 : FromPart.Length + from.Length + 1) +
                     (message.PayloadKind == PayloadKind.None ? 0 : PayloadPart.Length + payload.Length);
        var frame = GC.AllocateUninitializedArray<byte>(length);
        var rest = frame.AsSpan();
        Put(ref rest, start);
        if (message.Id is not null)
        {
            Put(ref rest, IdPart);
            Put(ref rest, id);
            Put(ref rest, "\""u8);
        }

        Put(ref rest, SeqPart);
        Put(ref rest, seq[..seqLength]);
        Put(ref rest, TsPart);
        Put(ref rest, ts[..tsLength]);
        if (message.From is not null)
        {
            Put(ref rest, FromPart);
            Put(ref rest, from);
            Put(ref rest, "\""u8);
        }

        if (message.PayloadKind != PayloadKind.None)
        {
            Put(ref rest, PayloadPart);
            Put(ref rest, payload);
        }

        Put(ref rest, "}"u8);
        // The array is not zeroed: a size counted too large would send whatever the heap held there.
        Debug.Assert(rest.IsEmpty, "EncodePlain filled less than the size it counted");
        return frame;
    }

    private static void Put(ref Span<byte> rest, scoped ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(rest);
        rest = rest[bytes.Length..];
    }

    // `{"type":…,"room":…` for this type and room, as the writer path writes it (EnvelopeWriter.WriteStart).
    private static ReadOnlySpan<byte> StartOf(string type, string room)
    {
        if (ReferenceEquals(type, t_startType) && ReferenceEquals(room, t_startRoom))
        {
            return t_start;
        }

        var writer = RentWriter(out var buffer);
        EnvelopeWriter.WriteStart(writer, type, room, null);
        writer.Flush();
        var start = buffer.WrittenSpan.ToArray();
        if (type.Length <= StartMaxLength && room.Length <= StartMaxLength)
        {
            (t_startType, t_startRoom, t_start) = (type, room, start);
        }

        return start;
    }

    public byte[] EncodeControl(ControlFrame frame)
    {
        if (ControlFrames.IsLiveJoined(frame))
        {
            return EncodeLiveJoined(frame.Room!, frame.Seq!.Value);
        }

        ControlFrames.EncodeNestedMessages(frame.Payload, this);
        var writer = RentWriter(out var buffer);
        EnvelopeWriter.WriteStart(writer, frame.Type, frame.Room, frame.Id);
        if (frame.Seq is { } seq)
        {
            writer.WriteNumber(SeqKey, seq);
        }

        if (frame.Payload is not null)
        {
            writer.WritePropertyName(PayloadKey);
            WriteValue(writer, frame.Payload);
        }

        writer.WriteEndObject();
        return Complete(writer, buffer);
    }

    // room.joined of a live join, around its room and seq: the bytes the writer path writes for it (EnvelopeWriter's
    // start, then seq, then the shared payload's two entries in their order).
    private static ReadOnlySpan<byte> LiveJoinedStart => "{\"type\":\"room.joined\",\"room\":\""u8;

    private static ReadOnlySpan<byte> LiveJoinedEnd => ",\"payload\":{\"replayed\":0,\"truncated\":false}}"u8;

    // Room characters the default encoder never escapes, copied as they are (room names are dotted ASCII tokens).
    private static readonly SearchValues<char> UnescapedRoomChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");

    /// <summary>
    /// A live join's <c>room.joined</c> (one per activated room) written straight into an array of its final size: no
    /// writer, no payload enumeration, no copy out of the thread's buffer ("Activation, tenth pass (issue 14)").
    /// </summary>
    private static byte[] EncodeLiveJoined(string room, ulong seq)
    {
        Span<byte> seqText = stackalloc byte[20];
        Utf8Formatter.TryFormat(seq, seqText, out var seqLength);
        var plain = !room.AsSpan().ContainsAnyExcept(UnescapedRoomChars);
        var escaped = plain ? default : JsonEncodedText.Encode(room);
        var roomLength = plain ? room.Length : escaped.EncodedUtf8Bytes.Length;
        var frame = GC.AllocateUninitializedArray<byte>(
            LiveJoinedStart.Length + roomLength + 1 + SeqPart.Length + seqLength + LiveJoinedEnd.Length);
        var rest = frame.AsSpan();
        Put(ref rest, LiveJoinedStart);
        if (plain)
        {
            System.Text.Encoding.ASCII.GetBytes(room, rest);
            rest = rest[roomLength..];
        }
        else
        {
            Put(ref rest, escaped.EncodedUtf8Bytes);
        }

        Put(ref rest, "\""u8);
        Put(ref rest, SeqPart);
        Put(ref rest, seqText[..seqLength]);
        Put(ref rest, LiveJoinedEnd);
        Debug.Assert(rest.IsEmpty, "EncodeLiveJoined filled less than the size it counted");
        return frame;
    }

    // An ack around its room, id and seq: the bytes the writer path writes for ControlFrames.Ack (EnvelopeWriter's start,
    // then seq, then the shared payload's one entry).
    private static ReadOnlySpan<byte> AckStart => "{\"type\":\"ack\",\"room\":\""u8;

    private static ReadOnlySpan<byte> AckStored => ",\"payload\":{\"duplicate\":false}}"u8;

    private static ReadOnlySpan<byte> AckDuplicate => ",\"payload\":{\"duplicate\":true}}"u8;

    // Id characters the default encoder never escapes (an id is printable ASCII; it escapes " \\ < > & ' + and `).
    private static readonly SearchValues<char> UnescapedIdChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%()*,-./:;=?@[]^_{|}~");

    /// <summary>
    /// An <c>ack</c> (one per publish) written straight into an array of its final size: no frame object, no writer, no
    /// payload enumeration, no copy out of the thread's buffer ("Ingest, tenth session"). The bytes of
    /// <see cref="EncodeControl"/> for <see cref="ControlFrames.Ack"/>.
    /// </summary>
    public byte[] EncodeAck(string room, string? id, ulong seq, bool duplicate)
    {
        ArgumentNullException.ThrowIfNull(room);
        Span<byte> seqText = stackalloc byte[20];
        Utf8Formatter.TryFormat(seq, seqText, out var seqLength);
        var roomText = new TextPart(room, UnescapedRoomChars);
        var idText = id is null ? default : new TextPart(id, UnescapedIdChars);
        var end = duplicate ? AckDuplicate : AckStored;
        var frame = GC.AllocateUninitializedArray<byte>(
            AckStart.Length + roomText.Length + 1 + (id is null ? 0 : IdPart.Length + idText.Length + 1) +
            SeqPart.Length + seqLength + end.Length);
        var rest = frame.AsSpan();
        Put(ref rest, AckStart);
        roomText.Put(ref rest);
        Put(ref rest, "\""u8);
        if (id is not null)
        {
            Put(ref rest, IdPart);
            idText.Put(ref rest);
            Put(ref rest, "\""u8);
        }

        Put(ref rest, SeqPart);
        Put(ref rest, seqText[..seqLength]);
        Put(ref rest, end);
        Debug.Assert(rest.IsEmpty, "EncodeAck filled less than the size it counted");
        return frame;
    }

    /// <summary>A string as the default encoder writes it: copied as ASCII when none of its characters needs an escape.</summary>
    private readonly ref struct TextPart
    {
        private readonly string _text;
        private readonly ReadOnlySpan<byte> _escaped;
        private readonly bool _plain;

        public TextPart(string text, SearchValues<char> unescaped)
        {
            _text = text;
            _plain = !text.AsSpan().ContainsAnyExcept(unescaped);
            _escaped = _plain ? default : JsonEncodedText.Encode(text).EncodedUtf8Bytes;
        }

        public int Length => _plain ? _text.Length : _escaped.Length;

        public void Put(ref Span<byte> rest)
        {
            if (_plain)
            {
                System.Text.Encoding.ASCII.GetBytes(_text, rest);
                rest = rest[_text.Length..];
            }
            else
            {
                JsonFrameCodec.Put(ref rest, _escaped);
            }
        }
    }

    private static void WriteValue(Utf8JsonWriter writer, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNullValue();
                break;
            case string s:
                WriteText(writer, s);
                break;
            case bool b:
                writer.WriteBooleanValue(b);
                break;
            case int i:
                writer.WriteNumberValue(i);
                break;
            case long l:
                writer.WriteNumberValue(l);
                break;
            case ulong ul:
                writer.WriteNumberValue(ul);
                break;
            case RoomMessage message:
                // A stored message inside a control frame (room.state): its own envelope, encoded once.
                writer.WriteRawValue(message.GetFrame(Instance)!, skipInputValidation: true);
                break;
            case IReadOnlyDictionary<string, object?> map:
                writer.WriteStartObject();
                if (map is Dictionary<string, object?> dictionary)
                {
                    // Most payloads: enumerated without boxing an enumerator (one per control frame written).
                    foreach (var (key, item) in dictionary)
                    {
                        WriteEntry(writer, key, item);
                    }
                }
                else
                {
                    foreach (var (key, item) in map)
                    {
                        WriteEntry(writer, key, item);
                    }
                }

                writer.WriteEndObject();
                break;
            case System.Collections.IEnumerable list:
                writer.WriteStartArray();
                foreach (var item in list)
                {
                    if (!ControlFrames.IsSkipped(item, Instance))
                    {
                        WriteValue(writer, item);
                    }
                }

                writer.WriteEndArray();
                break;
            default:
                throw new InvalidOperationException($"control payload value of type {value.GetType()} is not supported");
        }
    }

    // A control payload's text (an error's message and ref, a user name) is escaped only as JSON needs: '"', '\\',
    // control characters, U+2028/U+2029 and the other characters the encoder never passes are escaped; "'", '<', '&',
    // '+', '`' and non-ASCII letters stay as they are (`the token's signature`, not `the token\u0027s`). Frames are
    // read by JSON parsers, never embedded in HTML. The envelope's fields keep the default encoder (the fast paths
    // above write them as it does).
    private static readonly JavaScriptEncoder TextEncoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping;

    // Printable ASCII that neither encoder escapes: such text is written by the writer as it is, with no allocation.
    private static readonly SearchValues<char> PlainTextChars =
        SearchValues.Create(string.Concat(Enumerable.Range(0x20, 0x7F - 0x20).Select(c => (char)c).Where(c => !"\"&'+<>\\`".Contains(c))));

    private static void WriteText(Utf8JsonWriter writer, string text)
    {
        if (!text.AsSpan().ContainsAnyExcept(PlainTextChars))
        {
            writer.WriteStringValue(text);
            return;
        }

        writer.WriteStringValue(JsonEncodedText.Encode(WellFormed(text), TextEncoder));
    }

    // The text with each lone surrogate replaced by U+FFFD, as the writer replaces them (JsonEncodedText would throw):
    // UTF-8's replacement fallback does it on the way through (rare: only text with a surrogate pays).
    private static string WellFormed(string text) =>
        text.AsSpan().ContainsAnyInRange('\uD800', '\uDFFF') ? Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(text)) : text;

    private static void WriteEntry(Utf8JsonWriter writer, string key, object? item)
    {
        writer.WritePropertyName(key);
        WriteValue(writer, item);
    }

    private static Utf8JsonWriter RentWriter(out ArrayBufferWriter<byte> buffer)
    {
        buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        var writer = t_writer ??= new Utf8JsonWriter(buffer, new JsonWriterOptions { SkipValidation = false });
        writer.Reset(buffer);
        return writer;
    }

    private static byte[] Complete(Utf8JsonWriter writer, ArrayBufferWriter<byte> buffer)
    {
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private sealed class FieldKindException(string message) : Exception(message);
}
