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
