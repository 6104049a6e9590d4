namespace Bridge.Worker.Core;

/// <summary>
/// One stored message of a room, as it came off the stream. It is encoded at most once per wire format and
/// the same bytes are queued to every local connection of that format: no per-connection serialization.
/// </summary>
internal sealed class RoomMessage
{
    // Marks a format this message could not be encoded for at all; never a frame (a frame is never empty).
    private static readonly byte[] Skipped = [];

    // One slot per WireFormat (fields, not an array: no second allocation per message). A room's messages are
    // dispatched by that room's single reader, so the cache is filled from one thread; a racing reader would only
    // encode the same bytes twice.
    private byte[]? _jsonFrame;
    private byte[]? _messagePackFrame;

    public required string Room { get; init; }

    public required string Type { get; init; }

    public string? Id { get; init; }

    public string? From { get; init; }

    /// <summary>Stream sequence of this message.</summary>
    public required ulong Seq { get; init; }

    /// <summary>Stream sequence of the room's previous message (0 when unknown or first).</summary>
    public ulong PreviousSeq { get; init; }

    /// <summary>Stream time, milliseconds since the Unix epoch.</summary>
    public required long Timestamp { get; init; }

    public required PayloadKind PayloadKind { get; init; }

    public ReadOnlyMemory<byte> Payload { get; init; }

    /// <summary>
    /// The payload was checked as what <see cref="PayloadKind"/> says (for JSON: one value, every string Unicode text, so
    /// the bytes are UTF-8) where it entered: set by <c>RoomMessageReader</c>, so encoders need not check it again per
    /// message ("Replay, sixth pass (issue 14)"). Messages made elsewhere (unit tests) are checked when encoded.
    /// </summary>
    public bool PayloadChecked { get; init; }

    /// <summary>Where a fallback is counted and logged (set by <c>RoomMessageReader</c>; null in unit tests).</summary>
    public IEncodingFailures? Fallbacks { get; init; }

    /// <summary>
    /// The message as one frame of <paramref name="codec"/>'s format, or null when it cannot be encoded for that
    /// format at all (then it is skipped for every member of the format, counted and logged). Never throws: one
    /// message that cannot be encoded must not stop a room's dispatch, a replay or a sync (issue 12).
    /// </summary>
    public byte[]? GetFrame(IMessageEncoder codec)
    {
        ref var slot = ref codec.Format == WireFormat.Json ? ref _jsonFrame : ref _messagePackFrame;
        var frame = slot ??= Encode(codec) ?? Skipped;
        return ReferenceEquals(frame, Skipped) ? null : frame;
    }

    private byte[]? Encode(IMessageEncoder codec)
    {
        Exception failure;
        try
        {
            return codec.EncodeMessage(this);
        }
        catch (Exception ex)
        {
            failure = ex;
        }

        // The payload's bytes as a binary payload: every format can carry any bytes, so every member can read it.
        if (PayloadKind is PayloadKind.Json or PayloadKind.MessagePack)
        {
            try
            {
                var frame = codec.EncodeMessage(AsBinary());
                Fallbacks?.EncodeFailed(this, codec.Format, FallbackOutcome.Binary, failure);
                return frame;
            }
            catch (Exception ex)
            {
                failure = ex;
            }
        }

        Fallbacks?.EncodeFailed(this, codec.Format, FallbackOutcome.Skipped, failure);
        return null;
    }

    private RoomMessage AsBinary() => new()
    {
        Room = Room,
        Type = Type,
        Id = Id,
        From = From,
        Seq = Seq,
        PreviousSeq = PreviousSeq,
        Timestamp = Timestamp,
        PayloadKind = PayloadKind.Binary,
        Payload = Payload,
    };
}
