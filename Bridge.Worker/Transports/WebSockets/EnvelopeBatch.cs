using System.Buffers;
using System.Buffers.Binary;

namespace Bridge.Worker.Transports.WebSockets;

/// <summary>
/// One server-to-client WebSocket message of a batch subprotocol (<c>bridge.v1.json-batch</c>,
/// <c>bridge.v1.msgpack-batch</c>, docs/protocol.md §1) being composed: an array of the envelopes added, in order (a
/// JSON array of the encoded objects, a MessagePack array of the encoded maps). The envelopes are copied as encoded, so
/// each is byte for byte the frame a plain connection gets. The buffer is pooled, taken on the first add and returned
/// by <see cref="Clear"/>: an idle socket holds none. A local of one send loop: never shared.
/// </summary>
internal sealed class EnvelopeBatch(bool json, int maxBytes)
{
    // Room kept before the first envelope for the array's start: '[' (JSON), or a MessagePack array header of up to
    // 5 bytes, written right-aligned once the count is known so the message starts wherever the header does.
    private const int HeaderRoom = 5;

    private byte[]? _buffer;
    private int _end = HeaderRoom;

    /// <summary>Envelopes added since the last <see cref="Clear"/>.</summary>
    public int Count { get; private set; }

    /// <summary>
    /// Adds <paramref name="envelope"/> unless the message would then exceed the size limit: false, and nothing added,
    /// when it holds envelopes already (send it, clear, add again). An empty message takes any envelope: a larger one
    /// goes alone.
    /// </summary>
    public bool TryAdd(ReadOnlySpan<byte> envelope)
    {
        // The array's bytes around the envelopes: '[' and ']' and a ',' between (JSON), the header (MessagePack).
        var size = _end - HeaderRoom + envelope.Length + (json ? 2 : HeaderRoom);
        if (Count > 0 && size > maxBytes)
        {
            return false;
        }

        var needed = _end + envelope.Length + 2;
        if (_buffer is null || _buffer.Length < needed)
        {
            Grow(needed);
        }

        if (json)
        {
            _buffer![_end++] = Count == 0 ? (byte)'[' : (byte)',';
        }

        envelope.CopyTo(_buffer.AsSpan(_end));
        _end += envelope.Length;
        Count++;
        return true;
    }

    /// <summary>The message: the array of the envelopes added (at least one). Valid until <see cref="Clear"/>.</summary>
    public ReadOnlyMemory<byte> Complete()
    {
        if (json)
        {
            // '[' went at HeaderRoom with the first envelope; ']' after the last (room kept by TryAdd).
            _buffer![_end] = (byte)']';
            return _buffer.AsMemory(HeaderRoom, _end + 1 - HeaderRoom);
        }

        var start = HeaderRoom - HeaderLength(Count);
        WriteArrayHeader(_buffer.AsSpan(start, HeaderRoom - start), Count);
        return _buffer.AsMemory(start, _end - start);
    }

    /// <summary>Starts a new message and returns the buffer to the pool.</summary>
    public void Clear()
    {
        if (_buffer is not null)
        {
            ArrayPool<byte>.Shared.Return(_buffer);
            _buffer = null;
        }

        (_end, Count) = (HeaderRoom, 0);
    }

    private void Grow(int needed)
    {
        var larger = ArrayPool<byte>.Shared.Rent(Math.Max(needed, Math.Min(maxBytes + HeaderRoom + 2, Math.Max(needed * 2, (_buffer?.Length ?? 0) * 2))));
        if (_buffer is not null)
        {
            _buffer.AsSpan(0, _end).CopyTo(larger);
            ArrayPool<byte>.Shared.Return(_buffer);
        }

        _buffer = larger;
    }

    // MessagePack array headers, smallest first (the spec's fixarray, array 16, array 32).
    private static int HeaderLength(int count) => count <= 15 ? 1 : count <= ushort.MaxValue ? 3 : 5;

    private static void WriteArrayHeader(Span<byte> header, int count)
    {
        switch (header.Length)
        {
            case 1:
                header[0] = (byte)(0x90 | count);
                break;
            case 3:
                header[0] = 0xdc;
                BinaryPrimitives.WriteUInt16BigEndian(header[1..], (ushort)count);
                break;
            default:
                header[0] = 0xdd;
                BinaryPrimitives.WriteUInt32BigEndian(header[1..], (uint)count);
                break;
        }
    }
}
