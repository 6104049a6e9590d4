using Bridge.Worker.Protocol;

namespace Bridge.Worker.Rooms;

/// <summary>
/// One stored message of a room, as it came off the stream. It is encoded at most once per wire format and
/// the same bytes are queued to every local connection of that format: no per-connection serialization.
/// </summary>
internal sealed class RoomMessage
{
    // One slot per WireFormat. A room's messages are dispatched by that room's single reader, so the
    // cache is filled from one thread; a racing reader would only encode the same bytes twice.
    private readonly byte[]?[] _frames = new byte[WireFormats.Count][];

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

    public byte[] GetFrame(IFrameCodec codec)
    {
        var slot = (int)codec.Format;
        return _frames[slot] ??= codec.EncodeMessage(this);
    }
}
