using System.Buffers;

namespace Bridge.Tests.Infrastructure;

/// <summary>One buffer of a <see cref="ReadOnlySequence{T}"/> in pieces: input as NATS.Net's read loop may hand it over.</summary>
internal sealed class Segment : ReadOnlySequenceSegment<byte>
{
    public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

    /// <summary>A segment after this one, holding <paramref name="memory"/>.</summary>
    public Segment Append(ReadOnlyMemory<byte> memory)
    {
        var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
        Next = next;
        return next;
    }

    /// <summary><paramref name="bytes"/> as two buffers, the first holding the bytes before <paramref name="at"/>.</summary>
    public static ReadOnlySequence<byte> Split(byte[] bytes, int at)
    {
        var first = new Segment(bytes.AsMemory(0, at));
        var last = first.Append(bytes.AsMemory(at));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }
}
