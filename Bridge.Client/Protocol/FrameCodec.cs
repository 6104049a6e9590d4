using System.Buffers;
using System.Text.Json;
using MessagePack;

namespace Bridge.Client.Protocol;

/// <summary>A frame the client sends. The payload is JSON text (UTF-8) or bytes (a binary publish).</summary>
internal readonly record struct OutboundFrame(string Type, string? Room, string? Id, byte[]? Json = null, ReadOnlyMemory<byte>? Binary = null);

/// <summary>Encodes and decodes envelopes (docs/protocol.md §2, §3) in both subprotocols.</summary>
internal static class FrameCodec
{
    // The server limits payload nesting to 32 levels; the client refuses deeper frames instead of recursing on.
    private const int MaxDepth = 64;

    public static byte[] Encode(in OutboundFrame frame, BridgeFormat format) =>
        format == BridgeFormat.Json ? EncodeJson(frame) : EncodeMessagePack(frame);

    private static byte[] EncodeJson(in OutboundFrame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("type", frame.Type);
            if (frame.Room is not null)
            {
                writer.WriteString("room", frame.Room);
            }

            if (frame.Id is not null)
            {
                writer.WriteString("id", frame.Id);
            }

            if (frame.Binary is { } binary)
            {
                writer.WriteString("enc", "base64");
                writer.WriteBase64String("payload", binary.Span);
            }
            else if (frame.Json is { } json)
            {
                writer.WritePropertyName("payload");
                writer.WriteRawValue(json);
            }

            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static byte[] EncodeMessagePack(in OutboundFrame frame)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        var writer = new MessagePackWriter(buffer);
        var count = 1 + (frame.Room is null ? 0 : 1) + (frame.Id is null ? 0 : 1) + (frame.Binary is null && frame.Json is null ? 0 : 1);
        writer.WriteMapHeader(count);
        writer.Write("type");
        writer.Write(frame.Type);
        if (frame.Room is not null)
        {
            writer.Write("room");
            writer.Write(frame.Room);
        }

        if (frame.Id is not null)
        {
            writer.Write("id");
            writer.Write(frame.Id);
        }

        if (frame.Binary is { } binary)
        {
            writer.Write("payload");
            writer.Write(binary.Span);
        }
        else if (frame.Json is { } json)
        {
            writer.Write("payload");
            using var document = JsonDocument.Parse(json);
            WriteJsonAsMessagePack(ref writer, document.RootElement);
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>JSON → MessagePack as the server maps it (§3): int64, then uint64, else float64.</summary>
    private static void WriteJsonAsMessagePack(ref MessagePackWriter writer, JsonElement element)
    {
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                var count = 0;
                foreach (var _ in element.EnumerateObject())
                {
                    count++;
                }

                writer.WriteMapHeader(count);
                foreach (var property in element.EnumerateObject())
                {
                    writer.Write(property.Name);
                    WriteJsonAsMessagePack(ref writer, property.Value);
                }

                break;
            case JsonValueKind.Array:
                writer.WriteArrayHeader(element.GetArrayLength());
                foreach (var item in element.EnumerateArray())
                {
                    WriteJsonAsMessagePack(ref writer, item);
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
                else if (element.TryGetUInt64(out var u))
                {
                    writer.Write(u);
                }
                else
                {
                    writer.Write(element.GetDouble());
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

    /// <summary>Decodes one server frame; throws <see cref="FormatException"/> (or a JSON/MessagePack error) on a malformed one.</summary>
    public static Envelope Decode(ReadOnlyMemory<byte> data, BridgeFormat format) =>
        format == BridgeFormat.Json ? DecodeJson(data) : DecodeMessagePack(data);

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
                case "type":
                    envelope.Type = StringOrNull(value);
                    break;
                case "room":
                    envelope.Room = StringOrNull(value);
                    break;
                case "id":
                    envelope.Id = StringOrNull(value);
                    break;
                case "from":
                    envelope.From = StringOrNull(value);
                    break;
                case "enc":
                    enc = StringOrNull(value);
                    break;
                case "seq" when value.ValueKind == JsonValueKind.Number:
                    envelope.Seq = value.GetUInt64();
                    break;
                case "ts" when value.ValueKind == JsonValueKind.Number:
                    envelope.Ts = value.GetInt64();
                    break;
                case "payload":
                    envelope.Payload = value.Clone();
                    break;
            }
        }

        if (enc == "base64" && envelope.Payload is { ValueKind: JsonValueKind.String } encoded)
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
            var key = reader.NextMessagePackType == MessagePackType.String ? reader.ReadString() : null;
            switch (key)
            {
                case "type":
                    envelope.Type = ReadStringOrSkip(ref reader);
                    break;
                case "room":
                    envelope.Room = ReadStringOrSkip(ref reader);
                    break;
                case "id":
                    envelope.Id = ReadStringOrSkip(ref reader);
                    break;
                case "from":
                    envelope.From = ReadStringOrSkip(ref reader);
                    break;
                case "seq" when reader.NextMessagePackType == MessagePackType.Integer:
                    envelope.Seq = reader.ReadUInt64();
                    break;
                case "ts" when reader.NextMessagePackType == MessagePackType.Integer:
                    envelope.Ts = reader.ReadInt64();
                    break;
                case "payload":
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
            var key = reader.NextMessagePackType == MessagePackType.String ? reader.ReadString() : null;
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

    private static string? ReadStringOrSkip(ref MessagePackReader reader)
    {
        if (reader.NextMessagePackType == MessagePackType.String)
        {
            return reader.ReadString();
        }

        reader.Skip();
        return null;
    }

    private static JsonElement ToJsonElement(ReadOnlySequence<byte> raw)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            var reader = new MessagePackReader(raw);
            WriteMessagePackAsJson(ref reader, writer, 0);
        }

        using var document = JsonDocument.Parse(buffer.WrittenMemory);
        return document.RootElement.Clone();
    }

    /// <summary>MessagePack → JSON; a nested <c>bin</c> becomes a base64 string (as the server does, §3).</summary>
    private static void WriteMessagePackAsJson(ref MessagePackReader reader, Utf8JsonWriter writer, int depth)
    {
        if (depth > MaxDepth)
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
                writer.WriteNumberValue(reader.ReadDouble());
                break;
            case MessagePackType.String:
                writer.WriteStringValue(reader.ReadString());
                break;
            case MessagePackType.Binary:
                var bytes = reader.ReadBytes() ?? default;
                writer.WriteBase64StringValue(bytes.ToArray());
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
                    writer.WritePropertyName(reader.NextMessagePackType == MessagePackType.String ? reader.ReadString()! : "?");
                    WriteMessagePackAsJson(ref reader, writer, depth + 1);
                }

                writer.WriteEndObject();
                break;
            default:
                reader.Skip();
                writer.WriteNullValue();
                break;
        }
    }
}
