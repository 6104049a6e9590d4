using System.Buffers;
using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.Worker.Rooms;
using MessagePack;

namespace Bridge.Worker.Protocol;

/// <summary>
/// <c>bridge.v1.msgpack</c>: one MessagePack map per binary frame with the JSON envelope's keys.
/// A binary payload travels as MessagePack bin, a MessagePack payload as stored (byte for byte), a JSON payload as the
/// MessagePack form of its JSON value.
/// </summary>
internal sealed class MessagePackFrameCodec : IFrameCodec
{
    public static readonly MessagePackFrameCodec Instance = new();

    // The keys a message frame adds after the envelope's start, as MessagePack str (encoded once).
    private static readonly byte[] SeqKey = EnvelopeWriter.EncodeMessagePackString(EnvelopeKeys.Seq);
    private static readonly byte[] TsKey = EnvelopeWriter.EncodeMessagePackString(EnvelopeKeys.Ts);
    private static readonly byte[] FromKey = EnvelopeWriter.EncodeMessagePackString(EnvelopeKeys.From);
    private static readonly byte[] PayloadKey = EnvelopeWriter.EncodeMessagePackString(EnvelopeKeys.Payload);

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_buffer;

    private MessagePackFrameCodec()
    {
    }

    public WireFormat Format => WireFormat.MessagePack;

    public string Subprotocol => Subprotocols.MessagePack;

    public WebSocketMessageType MessageType => WebSocketMessageType.Binary;

    public InboundFrame? Decode(ReadOnlySpan<byte> data, out DecodeError error)
    {
        // MessagePackReader reads from ReadOnlyMemory/Sequence; frames are small and bounded by the frame limit.
        var memory = new ReadOnlyMemory<byte>(data.ToArray());
        string? type = null, room = null, id = null;
        var kind = PayloadKind.None;
        ReadOnlyMemory<byte> payload = default;
        try
        {
            var reader = new MessagePackReader(memory);
            if (reader.NextMessagePackType != MessagePackType.Map)
            {
                error = new DecodeError("frame must be a MessagePack map", null);
                return null;
            }

            // One bit per key read: a key twice is refused (as in JSON), so no first-wins reader sees another frame.
            // Unknown keys by name: the same name twice is refused too.
            var seen = EnvelopeKey.None;
            HashSet<string>? unknown = null;
            var entries = reader.ReadMapHeader();
            for (var i = 0; i < entries; i++)
            {
                if (reader.NextMessagePackType != MessagePackType.String)
                {
                    error = new DecodeError("envelope keys must be strings", id);
                    return null;
                }

                var name = UnicodeText.ReadString(ref reader);
                var key = EnvelopeKeySet.MessagePackKeyOf(name);
                if (!EnvelopeKeySet.TryAdd(ref seen, key, id, out error)
                    || (key == EnvelopeKey.None && !EnvelopeKeySet.TryAddUnknown(ref unknown, name, id, out error)))
                {
                    return null;
                }

                switch (key)
                {
                    case EnvelopeKey.Type:
                        type = ReadString(ref reader, EnvelopeKeys.Type);
                        break;
                    case EnvelopeKey.Room:
                        room = ReadString(ref reader, EnvelopeKeys.Room);
                        break;
                    case EnvelopeKey.Id:
                        id = ReadString(ref reader, EnvelopeKeys.Id);
                        break;
                    case EnvelopeKey.Payload:
                        if (reader.NextMessagePackType == MessagePackType.Binary)
                        {
                            kind = PayloadKind.Binary;
                            payload = (reader.ReadBytes() ?? default).ToArray();
                            break;
                        }

                        // Stored as sent: every rule is checked here, once, so that every member can be sent it
                        // (MessagePack members byte for byte, JSON members its rendering).
                        var start = (int)reader.Consumed;
                        if (PayloadTranscoder.CheckMessagePack(ref reader) is { } problem)
                        {
                            error = new DecodeError(problem, id);
                            return null;
                        }

                        kind = PayloadKind.MessagePack;
                        payload = memory[start..(int)reader.Consumed];
                        break;
                    default:
                        PayloadTranscoder.Skip(ref reader);
                        break;
                }
            }

            if (!reader.End)
            {
                error = new DecodeError("unexpected data after the MessagePack map", id);
                return null;
            }
        }
        catch (Exception ex) when (ex is MessagePackSerializationException or EndOfStreamException or FormatException
                                       or OverflowException or InvalidOperationException or ArgumentException)
        {
            // A FormatException is Bridge's own rule broken by a well-formed frame (a field of the wrong kind, a string
            // that is not text): worded as the JSON codec words it. Only bytes MessagePack cannot read are "malformed".
            error = new DecodeError(
                ex is FormatException ? ex.Message : $"malformed MessagePack: {PayloadTranscoder.DescribeMalformedMessagePack(ex)}", id);
            return null;
        }

        error = default;
        return new InboundFrame { Type = type, Room = room, Id = id, PayloadKind = kind, Payload = payload };
    }

    private static string? ReadString(ref MessagePackReader reader, string field)
    {
        if (reader.TryReadNil())
        {
            return null;
        }

        if (reader.NextMessagePackType != MessagePackType.String)
        {
            throw new FormatException($"field '{field}' must be a string");
        }

        return UnicodeText.ReadString(ref reader);
    }

    public byte[] EncodeMessage(RoomMessage message)
    {
        var buffer = RentBuffer();
        var writer = new MessagePackWriter(buffer);
        // seq and ts, then from and payload when there are.
        var others = 2 + (message.From is null ? 0 : 1) + (message.PayloadKind == PayloadKind.None ? 0 : 1);
        EnvelopeWriter.WriteStart(ref writer, message.Type, message.Room, message.Id, others);
        writer.WriteRaw(SeqKey);
        writer.Write(message.Seq);
        writer.WriteRaw(TsKey);
        writer.Write(message.Timestamp);
        if (message.From is not null)
        {
            writer.WriteRaw(FromKey);
            writer.Write(message.From);
        }

        switch (message.PayloadKind)
        {
            case PayloadKind.Json:
                writer.WriteRaw(PayloadKey);
                // Checked as UTF-8 where it was read off the stream (PayloadChecked): not again per frame.
                PayloadTranscoder.WriteJsonAsMessagePack(message.Payload, ref writer, stringsChecked: message.PayloadChecked);
                break;
            case PayloadKind.MessagePack:
                writer.WriteRaw(PayloadKey);
                writer.WriteRaw(message.Payload.Span);
                break;
            case PayloadKind.Binary:
                writer.WriteRaw(PayloadKey);
                writer.Write(message.Payload.Span);
                break;
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    public byte[] EncodeControl(ControlFrame frame)
    {
        if (ControlFrames.IsLiveJoined(frame))
        {
            return EncodeLiveJoined(frame.Room!, frame.Seq!.Value);
        }

        ControlFrames.EncodeNestedMessages(frame.Payload, this);
        var buffer = RentBuffer();
        var writer = new MessagePackWriter(buffer);
        EnvelopeWriter.WriteStart(ref writer, frame.Type, frame.Room, frame.Id, (frame.Seq is null ? 0 : 1) + (frame.Payload is null ? 0 : 1));
        if (frame.Seq is { } seq)
        {
            writer.Write(EnvelopeKeys.Seq);
            writer.Write(seq);
        }

        if (frame.Payload is not null)
        {
            writer.Write(EnvelopeKeys.Payload);
            WriteValue(ref writer, frame.Payload);
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    // room.joined of a live join around its room and seq, encoded once: the bytes the writer path writes for it (the map
    // header of type, room, seq and payload, type; room's key; then the message frames' seq key; then the shared payload).
    private static readonly byte[] LiveJoinedStart = Encode(static (ref MessagePackWriter writer) =>
    {
        writer.WriteMapHeader(4);
        writer.Write(EnvelopeKeys.Type);
        writer.Write(MessageTypes.RoomJoined);
        writer.Write(EnvelopeKeys.Room);
    });

    private static readonly byte[] LiveJoinedEnd = Encode(static (ref MessagePackWriter writer) =>
    {
        writer.Write(EnvelopeKeys.Payload);
        WriteValue(ref writer, ControlFrames.LiveJoinedPayload);
    });

    private delegate void Write(ref MessagePackWriter writer);

    private static byte[] Encode(Write write)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        var writer = new MessagePackWriter(buffer);
        write(ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// A live join's <c>room.joined</c> (one per activated room): its fixed parts copied, only the room and seq written;
    /// the room is not remembered as the envelope writer remembers a message's (each activated room is a new one).
    /// </summary>
    private static byte[] EncodeLiveJoined(string room, ulong seq)
    {
        var buffer = RentBuffer();
        var writer = new MessagePackWriter(buffer);
        writer.WriteRaw(LiveJoinedStart);
        writer.Write(room);
        writer.WriteRaw(SeqKey);
        writer.Write(seq);
        writer.WriteRaw(LiveJoinedEnd);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static void WriteValue(ref MessagePackWriter writer, object? value)
    {
        switch (value)
        {
            case null:
                writer.WriteNil();
                break;
            case string s:
                writer.Write(s);
                break;
            case bool b:
                writer.Write(b);
                break;
            case int i:
                writer.Write(i);
                break;
            case long l:
                writer.Write(l);
                break;
            case ulong ul:
                writer.Write(ul);
                break;
            case RoomMessage message:
                writer.WriteRaw(message.GetFrame(Instance)!);
                break;
            case IReadOnlyDictionary<string, object?> map:
                writer.WriteMapHeader(map.Count);
                foreach (var (key, item) in map)
                {
                    writer.Write(key);
                    WriteValue(ref writer, item);
                }

                break;
            case System.Collections.ICollection list:
                var count = 0;
                foreach (var item in list)
                {
                    count += ControlFrames.IsSkipped(item, Instance) ? 0 : 1;
                }

                writer.WriteArrayHeader(count);
                foreach (var item in list)
                {
                    if (!ControlFrames.IsSkipped(item, Instance))
                    {
                        WriteValue(ref writer, item);
                    }
                }

                break;
            default:
                throw new InvalidOperationException($"control payload value of type {value.GetType()} is not supported");
        }
    }

    private static ArrayBufferWriter<byte> RentBuffer()
    {
        var buffer = t_buffer ??= new ArrayBufferWriter<byte>(1024);
        buffer.ResetWrittenCount();
        return buffer;
    }
}
