using System.Buffers;
using System.Text.Json;
using Bridge.Contracts;
using MessagePack;

namespace Bridge.Client.Protocol;

/// <summary>
/// A frame the client sends. The payload is JSON text (UTF-8), one checked MessagePack value, or bytes (a binary
/// publish); at most one is set.
/// </summary>
internal readonly record struct OutboundFrame(
    string Type, string? Room, string? Id, byte[]? Json = null, ReadOnlyMemory<byte>? Binary = null, ReadOnlyMemory<byte>? MessagePack = null);

/// <summary>
/// The envelopes of one batch message (<see cref="FrameCodec.DecodeArray"/>), in order: the first one inline, a list
/// only from the second on, so a one-element array (a live message, mostly) allocates nothing beyond its envelope.
/// </summary>
internal struct EnvelopeRun : IEnumerable<Envelope>
{
    private Envelope? _first;
    private List<Envelope>? _rest;

    /// <summary>How many envelopes: 0 when every element was skipped.</summary>
    public readonly int Count => _first is null ? 0 : 1 + (_rest?.Count ?? 0);

    /// <summary>True when a list was allocated for the envelopes after the first.</summary>
    internal readonly bool HasList => _rest is not null;

    public void Add(Envelope envelope)
    {
        if (_first is null)
        {
            _first = envelope;
        }
        else
        {
            (_rest ??= []).Add(envelope);
        }
    }

    /// <summary>A struct enumerator (no allocation in a <c>foreach</c>).</summary>
    public readonly Enumerator GetEnumerator() => new(_first, _rest);

    readonly IEnumerator<Envelope> IEnumerable<Envelope>.GetEnumerator() => GetEnumerator();

    readonly System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

    public struct Enumerator(Envelope? first, List<Envelope>? rest) : IEnumerator<Envelope>
    {
        // -1 before the first, 0 at the first, i + 1 at rest[i].
        private int _at = -1;

        public readonly Envelope Current => _at == 0 ? first! : rest![_at - 1];

        readonly object System.Collections.IEnumerator.Current => Current;

        public bool MoveNext()
        {
            if (first is null)
            {
                return false;
            }

            var next = _at + 1;
            if (next > (rest?.Count ?? 0))
            {
                return false;
            }

            _at = next;
            return true;
        }

        public void Reset() => _at = -1;

        public readonly void Dispose()
        {
        }
    }
}

/// <summary>
/// Encodes and decodes envelopes (docs/protocol.md §2, §3) in both subprotocols; payloads are converted by the
/// gateway's own <see cref="PayloadTranscoder"/>.
/// </summary>
internal static class FrameCodec
{
    // A payload nests at most 32 levels; a room.state frame carries whole envelopes in its payload, so the client reads
    // a server frame's payload to twice that before it refuses it instead of recursing on.
    private const int MaxDepth = 2 * ProtocolLimits.MaxPayloadDepth;

    public static byte[] Encode(in OutboundFrame frame, BridgeFormat format) =>
        format == BridgeFormat.Json ? EncodeJson(frame) : EncodeMessagePack(frame);

    private static byte[] EncodeJson(in OutboundFrame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            EnvelopeWriter.WriteStart(writer, frame.Type, frame.Room, frame.Id);
            if (frame.Binary is { } binary)
            {
                writer.WriteString(EnvelopeKeys.Enc, EnvelopeKeys.Base64);
                writer.WriteBase64String(EnvelopeKeys.Payload, binary.Span);
            }
            else if (frame.Json is { } json)
            {
                writer.WritePropertyName(EnvelopeKeys.Payload);
                writer.WriteRawValue(json);
            }
            else if (frame.MessagePack is { } value)
            {
                // A JSON connection publishes the MessagePack value's JSON rendering (checked by the caller).
                writer.WritePropertyName(EnvelopeKeys.Payload);
                var reader = new MessagePackReader(value);
                PayloadTranscoder.WriteMessagePackAsJson(ref reader, writer);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] EncodeMessagePack(in OutboundFrame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        var writer = new MessagePackWriter(buffer);
        var hasPayload = frame.Binary is not null || frame.Json is not null || frame.MessagePack is not null;
        EnvelopeWriter.WriteStart(ref writer, frame.Type, frame.Room, frame.Id, hasPayload ? 1 : 0);
        if (frame.Binary is { } binary)
        {
            writer.Write(EnvelopeKeys.Payload);
            writer.Write(binary.Span);
        }
        else if (frame.Json is { } json)
        {
            writer.Write(EnvelopeKeys.Payload);
            PayloadTranscoder.WriteJsonAsMessagePack(json, ref writer);
        }
        else if (frame.MessagePack is { } value)
        {
            writer.Write(EnvelopeKeys.Payload);
            writer.WriteRaw(value.Span);
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>Decodes one server frame; throws <see cref="FormatException"/> (or a JSON/MessagePack error) on a malformed one.</summary>
    public static Envelope Decode(ReadOnlyMemory<byte> data, BridgeFormat format) =>
        format == BridgeFormat.Json ? DecodeJson(data) : DecodeMessagePack(data);

    /// <summary>
    /// Decodes one server message of a batch subprotocol (docs/protocol.md §1): an array of one or more envelopes, in
    /// send order. An element that cannot be read is left out and passed to <paramref name="skipped"/> (its index and
    /// the error), so one unreadable envelope costs only itself. Throws as <see cref="Decode"/> when the array itself
    /// is malformed (not an array, not parseable, or an element that cannot even be skipped). A one-element array (most
    /// live traffic) costs what the same frame alone costs: no list.
    /// </summary>
    public static EnvelopeRun DecodeArray(ReadOnlyMemory<byte> data, BridgeFormat format, Action<int, Exception>? skipped = null)
    {
        var envelopes = default(EnvelopeRun);
        if (format == BridgeFormat.Json)
        {
            using var document = JsonDocument.Parse(data, new JsonDocumentOptions { MaxDepth = MaxDepth + 1 });
            if (document.RootElement.ValueKind != JsonValueKind.Array)
            {
                throw new FormatException("a batch message must be a JSON array");
            }

            var index = 0;
            foreach (var element in document.RootElement.EnumerateArray())
            {
                try
                {
                    envelopes.Add(element.ValueKind == JsonValueKind.Object ? FromJson(element) : throw new FormatException("a frame must be a JSON object"));
                }
                catch (Exception ex) when (IsDecodeError(ex))
                {
                    skipped?.Invoke(index, ex);
                }

                index++;
            }

            return envelopes;
        }

        var reader = new MessagePackReader(data);
        if (reader.NextMessagePackType != MessagePackType.Array)
        {
            throw new FormatException("a batch message must be a MessagePack array");
        }

        var count = reader.ReadArrayHeader();
        for (var i = 0; i < count; i++)
        {
            // Read on a copy: on failure the element is skipped from where it starts (a structure MessagePack can
            // always walk, or the whole message is malformed and Skip throws).
            var element = reader;
            try
            {
                envelopes.Add(ReadMessagePackEnvelope(ref element));
                reader = element;
            }
            catch (Exception ex) when (IsDecodeError(ex))
            {
                reader.Skip();
                skipped?.Invoke(i, ex);
            }
        }

        return reader.End ? envelopes : throw new FormatException("unexpected data after the MessagePack array");
    }

    /// <summary>The errors decoding malformed or unknown server bytes can raise (never a bug in this client).</summary>
    public static bool IsDecodeError(Exception ex) =>
        ex is FormatException or JsonException or MessagePackSerializationException or EndOfStreamException
            or InvalidOperationException or OverflowException;

    private static Envelope DecodeJson(ReadOnlyMemory<byte> data)
    {
        using var document = JsonDocument.Parse(data);
        if (document.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new FormatException("a frame must be a JSON object");
        }

        return FromJson(document.RootElement);
    }

    private static Envelope FromJson(JsonElement root)
    {
        var envelope = new Envelope();
        string? enc = null;
        foreach (var property in root.EnumerateObject())
        {
            var value = property.Value;
            switch (property.Name)
            {
                case EnvelopeKeys.Type:
                    envelope.Type = StringOrNull(value);
                    break;
                case EnvelopeKeys.Room:
                    envelope.Room = StringOrNull(value);
                    break;
                case EnvelopeKeys.Id:
                    envelope.Id = StringOrNull(value);
                    break;
                case EnvelopeKeys.From:
                    envelope.From = StringOrNull(value);
                    break;
                case EnvelopeKeys.Enc:
                    enc = StringOrNull(value);
                    break;
                case EnvelopeKeys.Seq when value.ValueKind == JsonValueKind.Number:
                    envelope.Seq = value.GetUInt64();
                    break;
                case EnvelopeKeys.Ts when value.ValueKind == JsonValueKind.Number:
                    // A ts that is not a 64-bit integer (a fraction, beyond the range) is taken as absent: the message
                    // is delivered without its time (BridgeMessage.Timestamp), not skipped.
                    envelope.Ts = value.TryGetInt64(out var ts) ? ts : null;
                    break;
                case EnvelopeKeys.Payload:
                    envelope.Payload = value.Clone();
                    break;
            }
        }

        if (enc == EnvelopeKeys.Base64 && envelope.Payload is { ValueKind: JsonValueKind.String } encoded)
        {
            envelope.Binary = encoded.GetBytesFromBase64();
            envelope.Payload = null;
        }

        if (envelope.Type == Bridge.Contracts.MessageTypes.RoomState &&
            envelope.Payload is { ValueKind: JsonValueKind.Object } state &&
            state.TryGetProperty("messages", out var messages) && messages.ValueKind == JsonValueKind.Array)
        {
            envelope.Messages = [.. messages.EnumerateArray().Where(m => m.ValueKind == JsonValueKind.Object).Select(FromJson)];
        }

        return envelope;
    }

    private static string? StringOrNull(JsonElement value) => value.ValueKind == JsonValueKind.String ? value.GetString() : null;

    private static Envelope DecodeMessagePack(ReadOnlyMemory<byte> data)
    {
        var reader = new MessagePackReader(data);
        var envelope = ReadMessagePackEnvelope(ref reader);
        if (!reader.End)
        {
            throw new FormatException("unexpected data after the MessagePack map");
        }

        return envelope;
    }

    private static Envelope ReadMessagePackEnvelope(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType != MessagePackType.Map)
        {
            throw new FormatException("a frame must be a MessagePack map");
        }

        var envelope = new Envelope();
        ReadOnlySequence<byte>? payload = null;
        var entries = reader.ReadMapHeader();
        for (var i = 0; i < entries; i++)
        {
            if (ReadKeyOrSkip(ref reader) is not { } key)
            {
                continue;
            }

            switch (key)
            {
                case EnvelopeKeys.Type:
                    envelope.Type = ReadStringOrSkip(ref reader);
                    break;
                case EnvelopeKeys.Room:
                    envelope.Room = ReadStringOrSkip(ref reader);
                    break;
                case EnvelopeKeys.Id:
                    envelope.Id = ReadStringOrSkip(ref reader);
                    break;
                case EnvelopeKeys.From:
                    envelope.From = ReadStringOrSkip(ref reader);
                    break;
                case EnvelopeKeys.Seq when reader.NextMessagePackType == MessagePackType.Integer:
                    envelope.Seq = reader.ReadUInt64();
                    break;
                case EnvelopeKeys.Ts:
                    envelope.Ts = ReadInt64OrSkip(ref reader);
                    break;
                case EnvelopeKeys.Payload:
                    payload = reader.ReadRaw();
                    break;
                default:
                    reader.Skip();
                    break;
            }
        }

        if (payload is { } raw)
        {
            var payloadReader = new MessagePackReader(raw);
            if (payloadReader.NextMessagePackType == MessagePackType.Binary)
            {
                envelope.Binary = (payloadReader.ReadBytes() ?? default).ToArray();
            }
            else
            {
                // The value as the server sent it (a MessagePack publisher's bytes, timestamps included), and its JSON
                // rendering; a value without one (a backend's NaN) keeps only the bytes.
                envelope.MessagePack = raw.ToArray();
                envelope.Payload = ToJsonElement(raw);
                if (envelope.Type == Bridge.Contracts.MessageTypes.RoomState)
                {
                    envelope.Messages = ReadStateMessages(raw);
                }
            }
        }

        return envelope;
    }

    private static List<Envelope>? ReadStateMessages(ReadOnlySequence<byte> payload)
    {
        var reader = new MessagePackReader(payload);
        if (reader.NextMessagePackType != MessagePackType.Map)
        {
            return null;
        }

        var entries = reader.ReadMapHeader();
        for (var i = 0; i < entries; i++)
        {
            if (ReadKeyOrSkip(ref reader) is not { } key)
            {
                continue;
            }

            if (key == "messages" && reader.NextMessagePackType == MessagePackType.Array)
            {
                var count = reader.ReadArrayHeader();
                var list = new List<Envelope>(count);
                for (var j = 0; j < count; j++)
                {
                    list.Add(ReadMessagePackEnvelope(ref reader));
                }

                return list;
            }

            reader.Skip();
        }

        return null;
    }

    /// <summary>
    /// A signed 64-bit integer, or null for anything else (skipped): an unsigned one above <see cref="long.MaxValue"/>, a
    /// float, another kind. Such a <c>ts</c> is taken as absent, so the message is still delivered.
    /// </summary>
    private static long? ReadInt64OrSkip(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType != MessagePackType.Integer)
        {
            reader.Skip();
            return null;
        }

        if (reader.NextCode != MessagePackCode.UInt64)
        {
            return reader.ReadInt64(); // every other integer encoding fits
        }

        var value = reader.ReadUInt64();
        return value <= long.MaxValue ? (long)value : null;
    }

    /// <summary>
    /// A map key that is a string; null for any other key, which names no field: it is skipped with its value, so the
    /// reader stays on the map's next key (a worker writes only string keys, §2).
    /// </summary>
    private static string? ReadKeyOrSkip(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType == MessagePackType.String)
        {
            return reader.ReadString();
        }

        reader.Skip();
        reader.Skip();
        return null;
    }

    private static string? ReadStringOrSkip(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType == MessagePackType.String)
        {
            return reader.ReadString();
        }

        reader.Skip();
        return null;
    }

    private static JsonElement? ToJsonElement(ReadOnlySequence<byte> raw)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        try
        {
            using var writer = new Utf8JsonWriter(buffer);
            var reader = new MessagePackReader(raw);
            PayloadTranscoder.WriteMessagePackAsJson(ref reader, writer, MaxDepth);
        }
        catch (FormatException)
        {
            return null;
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }
}
