using System.Buffers.Text;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// The ingest scenario's publish frame (JSON), written as bytes into a buffer the client reuses:
/// <c>{"type":"load.ingest","room":"bench.r&lt;room&gt;","id":"&lt;prefix&gt;&lt;n&gt;","payload":&lt;LoadPayload&gt;}</c>. The
/// same bytes the client built before as three strings per publish (the body, the frame, then its UTF-8 copy); on two
/// shared cores the load generator's CPU is CPU the worker lacks, and a device sends bytes it already has.
/// </summary>
internal static class IngestFrame
{
    /// <summary>The longest <see cref="Write"/> writes for an id prefix of <see cref="MaxPrefix"/> bytes.</summary>
    public const int MaxLength = 512;

    /// <summary>The longest id prefix <see cref="Write"/> takes.</summary>
    public const int MaxPrefix = 128;

    /// <summary>
    /// Writes the frame of publish <paramref name="n"/> to room <paramref name="room"/> (<c>bench.r&lt;room&gt;</c>, as
    /// <c>Rooms.Name</c>) into <paramref name="destination"/> (<see cref="MaxLength"/> bytes at least) and returns its
    /// length. <paramref name="idPrefix"/>: the id's bytes before <paramref name="n"/>, text that JSON needs no escape
    /// for (the harness's run tags, digits and dashes).
    /// </summary>
    public static int Write(Span<byte> destination, ReadOnlySpan<byte> idPrefix, long n, int room)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(idPrefix.Length, MaxPrefix);
        var rest = destination;
        LoadPayload.Put(ref rest, "{\"type\":\"load.ingest\",\"room\":\"bench.r"u8);
        LoadPayload.Number(ref rest, room);
        LoadPayload.Put(ref rest, "\",\"id\":\""u8);
        LoadPayload.Put(ref rest, idPrefix);
        LoadPayload.Number(ref rest, n);
        LoadPayload.Put(ref rest, "\",\"payload\":"u8);
        rest = rest[LoadPayload.Write(rest, 0, n, room)..];
        LoadPayload.Put(ref rest, "}"u8);
        return destination.Length - rest.Length;
    }
}
