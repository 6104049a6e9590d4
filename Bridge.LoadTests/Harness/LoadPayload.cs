using System.Buffers.Text;
using System.Diagnostics;
using System.Text;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// The body every peer carries, the same bytes for all of them: a small JSON object with the publish time
/// (<see cref="Stopwatch"/> ticks), the room's sequence and the room's index, padded to about 64 bytes.
/// </summary>
internal static class LoadPayload
{
    private static readonly byte[] SentKey = "\"sent\":"u8.ToArray();
    private static readonly byte[] SeqKey = "\"lseq\":"u8.ToArray();
    private static readonly byte[] RoomKey = "\"lroom\":"u8.ToArray();

    /// <param name="size">About how many bytes the body takes (64 unless a scenario needs larger messages).</param>
    public static byte[] Create(long sentTs, long n, int room, int size = 64)
    {
        var body = $"{{\"sent\":{sentTs},\"lseq\":{n},\"lroom\":{room},\"pad\":\"";
        return Encoding.UTF8.GetBytes(body + new string('x', Math.Max(4, size - 2 - body.Length)) + "\"}");
    }

    /// <summary>
    /// The bytes of <see cref="Create"/> written into <paramref name="destination"/> (at least <see cref="MaxLength"/>
    /// long for the default size) without a string or an array; returns how many. For clients that send a frame per
    /// publish from one reused buffer (the ingest scenario), as a device sends bytes it already has.
    /// </summary>
    public static int Write(Span<byte> destination, long sentTs, long n, int room, int size = 64)
    {
        var rest = destination;
        Put(ref rest, "{\"sent\":"u8);
        Number(ref rest, sentTs);
        Put(ref rest, ",\"lseq\":"u8);
        Number(ref rest, n);
        Put(ref rest, ",\"lroom\":"u8);
        Number(ref rest, room);
        Put(ref rest, ",\"pad\":\""u8);
        var pad = Math.Max(4, size - 2 - (destination.Length - rest.Length));
        rest[..pad].Fill((byte)'x');
        rest = rest[pad..];
        Put(ref rest, "\"}"u8);
        return destination.Length - rest.Length;
    }

    /// <summary>Bytes <see cref="Write"/> needs at most at the default size: the fields at their longest, and the pad.</summary>
    public const int MaxLength = 128;

    /// <summary>Copies <paramref name="bytes"/> to the start of <paramref name="rest"/> and moves past them.</summary>
    internal static void Put(ref Span<byte> rest, ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(rest);
        rest = rest[bytes.Length..];
    }

    /// <summary>Writes <paramref name="value"/> in decimal at the start of <paramref name="rest"/> and moves past it.</summary>
    internal static void Number(ref Span<byte> rest, long value)
    {
        Utf8Formatter.TryFormat(value, rest, out var written);
        rest = rest[written..];
    }

    /// <summary>Finds the three fields anywhere in <paramref name="json"/> (a bare body, or an envelope around it).</summary>
    public static bool TryParse(ReadOnlySpan<byte> json, out long sent, out long n, out int room)
    {
        sent = n = 0;
        room = 0;
        return TryRead(json, SentKey, out sent) && TryRead(json, SeqKey, out n) && TryRead(json, RoomKey, out long r) && (room = (int)r) >= 0;
    }

    private static bool TryRead(ReadOnlySpan<byte> json, ReadOnlySpan<byte> key, out long value)
    {
        value = 0;
        var at = json.IndexOf(key);
        return at >= 0 && Utf8Parser.TryParse(json[(at + key.Length)..], out value, out _);
    }
}
