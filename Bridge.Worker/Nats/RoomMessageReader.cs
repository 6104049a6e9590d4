using System.Buffers;
using System.Globalization;
using Bridge.Contracts;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

/// <summary>
/// Turns a message from the stream (republished live, or read back from history) into a <see cref="RoomMessage"/>:
/// the edge for what backends write into NATS. Whatever the bytes, the result can be delivered to every member.
/// </summary>
internal sealed class RoomMessageReader(MessageFallbacks fallbacks, TimeProvider time)
{
    // Headers the stream adds to republished messages.
    public const string SequenceHeader = "Nats-Sequence";
    public const string LastSequenceHeader = "Nats-Last-Sequence";
    public const string TimeStampHeader = "Nats-Time-Stamp";

    // The last type string that passed the type check (any thread's: every string ever here passed it).
    private volatile string? _lastAllowedType;

    /// <summary>
    /// Reads a message that carries the stream's own headers: republished live, or fetched by direct get.
    /// Null when it lacks the stream sequence (not from the stream).
    /// </summary>
    public RoomMessage? ReadStamped(string room, in NatsMsg<byte[]> msg)
    {
        var headers = msg.Headers;
        if (headers is null || !TryGetUInt64(headers, SequenceHeader, out var seq))
        {
            return null;
        }

        TryGetUInt64(headers, LastSequenceHeader, out var previous);
        var timestamp = ServerValue(headers, TimeStampHeader) is { } ts &&
                        DateTimeOffset.TryParse(ts, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)
            ? parsed.ToUnixTimeMilliseconds()
            : time.GetUtcNow().ToUnixTimeMilliseconds();
        return Create(room, seq, previous, timestamp, headers, msg.Data ?? []);
    }

    /// <summary>The stream seq a stored or republished message carries (<c>Nats-Sequence</c>); 0 without one.</summary>
    public static ulong SequenceOf(NatsHeaders? headers) =>
        headers is not null && TryGetUInt64(headers, SequenceHeader, out var seq) ? seq : 0;

    public RoomMessage Create(string room, ulong seq, ulong previous, long timestamp, NatsHeaders? headers, byte[] body) =>
        headers is null
            ? Create(room, seq, previous, timestamp, default(HeaderBlock), body)
            : Create(
                room, seq, previous, timestamp,
                new HeaderBlock(
                    headers.Code, Get(headers, NatsSubjects.TypeHeader), Get(headers, NatsSubjects.FromHeader), Get(headers, NatsSubjects.IdHeader),
                    Get(headers, NatsSubjects.ContentTypeHeader), Malformed: false),
                body);

    /// <summary>
    /// A stored message read from the bytes NATS.Net's read loop hands over: its Bridge headers read from the header
    /// block (<see cref="HeaderBlock"/>), its body copied once into the message's payload.
    /// </summary>
    public RoomMessage Create(string room, ulong seq, ulong previous, long timestamp, in HeaderBlock headers, in ReadOnlySequence<byte> body) =>
        Create(room, seq, previous, timestamp, headers, body.IsEmpty ? [] : body.ToArray());

    /// <summary>The one place where a stored message's header values and body become a <see cref="RoomMessage"/>.</summary>
    public RoomMessage Create(string room, ulong seq, ulong previous, long timestamp, in HeaderBlock headers, byte[] body)
    {
        var (type, from, id, contentType) = (headers.Type, headers.From, headers.Id, headers.ContentType);

        // A backend may write anything; only a well-formed, non-reserved type reaches clients as such, and
        // presence.update, which the gateway itself stores in presence rooms (clients cannot publish it). The string
        // that last passed is not checked again (a history read hands the same string on: HeaderBlock.Read).
        if (type is null || !ReferenceEquals(type, _lastAllowedType))
        {
            if (!MessageTypes.IsValid(type) || (MessageTypes.IsReserved(type!) && type != MessageTypes.PresenceUpdate))
            {
                type = NatsSubjects.DefaultType;
            }
            else
            {
                _lastAllowedType = type;
            }
        }

        if (!MessageId.IsValid(id))
        {
            id = null;
        }

        // The sender, held to the one rule for a sender (a token's sub, the backend API's from): a backend's
        // Bridge-From that breaks it (empty, over 256 characters, a control character) is dropped as a bad Bridge-Id
        // is; the message is still delivered, without from (docs/protocol.md §10).
        if (from is not null && !Security.TokenValidator.IsValidSubject(from))
        {
            from = null;
        }

        var encoding = ContentTypes.EncodingOf(contentType);
        var kind = ClassifyPayload(encoding, body);
        if (kind == PayloadKind.Binary && encoding is PayloadKind.Json or PayloadKind.MessagePack)
        {
            // Labelled JSON (MessagePack), but not Unicode JSON (MessagePack): as binary, every member can read it
            // (counted, issue 12).
            fallbacks.NotUnicodeJson(room, seq);
        }

        if (kind == PayloadKind.Json && body.AsSpan().IndexOfAny((byte)'\n', (byte)'\r') >= 0)
        {
            // Line breaks between tokens (pretty-printed JSON from a backend) would split an SSE data line;
            // compacting once here keeps every envelope on one line for every transport.
            body = Compact(body);
        }

        return new RoomMessage
        {
            Room = room,
            Seq = seq,
            PreviousSeq = previous,
            Timestamp = timestamp,
            Type = type!,
            From = from,
            Id = id,
            PayloadKind = kind,
            Payload = body,
            // ClassifyPayload checked a JSON or MessagePack body (and Compact writes valid JSON).
            PayloadChecked = true,
            Fallbacks = fallbacks,
        };
    }

    /// <summary>
    /// JSON bodies are embedded as they are in JSON frames, and MessagePack bodies in MessagePack frames, so they are
    /// validated once here, per message and not per connection. A body that is not one valid value of its encoding, or
    /// whose strings are not Unicode text (bytes that are not UTF-8, an escaped lone surrogate), travels as binary,
    /// whatever its header claims. Without a header, a body that is valid JSON is JSON (MessagePack is never guessed:
    /// almost any bytes are some MessagePack value).
    /// </summary>
    private static PayloadKind ClassifyPayload(PayloadKind encoding, byte[] body)
    {
        if (body.Length == 0)
        {
            return PayloadKind.None;
        }

        return encoding switch
        {
            PayloadKind.Binary => PayloadKind.Binary,
            PayloadKind.MessagePack => PayloadTranscoder.IsValidMessagePack(body) ? PayloadKind.MessagePack : PayloadKind.Binary,
            _ => PayloadTranscoder.IsValidJson(body) ? PayloadKind.Json : PayloadKind.Binary,
        };
    }

    private static byte[] Compact(byte[] json)
    {
        using var document = System.Text.Json.JsonDocument.Parse(json);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>(json.Length);
        using (var writer = new System.Text.Json.Utf8JsonWriter(buffer))
        {
            document.RootElement.WriteTo(writer);
        }

        return buffer.WrittenSpan.ToArray();
    }

    private static string? Get(NatsHeaders headers, string key) =>
        headers.TryGetValue(key, out var values) && values.Count > 0 ? values[0] : null;

    /// <summary>
    /// The value nats-server gave a header it sets itself (<c>Nats-Sequence</c>, <c>Nats-Last-Sequence</c>,
    /// <c>Nats-Time-Stamp</c>, <c>Nats-Subject</c>): the last one. A publisher may write the same names (a backend on
    /// NATS, docs/protocol.md §10); the server keeps them and appends its own after them, on the republish to
    /// <c>live.rooms.&gt;</c> and on direct gets, so the first value can be anyone's.
    /// </summary>
    internal static string? ServerValue(NatsHeaders? headers, string key) =>
        headers is not null && headers.TryGetValue(key, out var values) && values.Count > 0 ? values[^1] : null;

    private static bool TryGetUInt64(NatsHeaders headers, string key, out ulong value)
    {
        value = 0;
        return ServerValue(headers, key) is { } text && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
    }
}
