using System.Buffers;
using System.Text;
using Bridge.Worker.Nats;
using CsCheck;

namespace Bridge.Tests.Unit;

/// <summary>
/// <see cref="HeaderBlockReader"/>, a cursor's reading of its deliveries' header blocks in turn: whatever the order,
/// each block reads as <see cref="HeaderBlock.Read(in ReadOnlySequence{byte}?, Encoding, string?)"/> reads it alone.
/// </summary>
public sealed class HeaderBlockReaderTests
{
    // Blocks of the same length that differ (a type, a case, a status), repeated ones, none, malformed ones, a long one.
    private static readonly string?[] Blocks =
    [
        "NATS/1.0\r\nBridge-Type: load.tick\r\n\r\n",
        "NATS/1.0\r\nBridge-Type: load.tock\r\n\r\n",
        "NATS/1.0\r\nbridge-type: load.tick\r\n\r\n",
        "NATS/1.0\r\nBridge-Type: load.tick\r\nBridge-From: ana\r\n\r\n",
        "NATS/1.0\r\nBridge-Type: load.tick\r\nBridge-From: bob\r\n\r\n",
        "NATS/1.0\r\nBridge-Type: load.tick\r\nBridge-Id: m-1\r\nContent-Type: application/json\r\n\r\n",
        "NATS/1.0\r\nBridge-Type: load.tick\r\nBridge-Id: m-2\r\nContent-Type: application/json\r\n\r\n",
        "NATS/1.0 404 No Messages\r\n\r\n",
        "NATS/1.0 408 Request Timeout\r\n\r\n",
        "NATS/1.0\r\nBridge-Type load.tick\r\n\r\n",
        "NATS/1.0\r\nBridge-Type: load.tick\r\n",
        "\r\n",
        "NATS/1.0\r\nBridge-Type: " + new string('t', 300) + "\r\n\r\n",
        "NATS/1.0\r\nBridge-Type: " + new string('t', 300) + "\r\nBridge-From: x\r\n\r\n",
        null,
        "",
    ];

    private static ReadOnlySequence<byte>? Sequence(string? block, int split)
    {
        if (block is null)
        {
            return null;
        }

        var bytes = Encoding.ASCII.GetBytes(block);
        if (split <= 0 || split >= bytes.Length)
        {
            return new ReadOnlySequence<byte>(bytes);
        }

        // The same bytes in two pieces, as NATS.Net hands over a block that spans two socket reads.
        var first = new Segment(bytes.AsMemory(0, split));
        var last = first.Append(bytes.AsMemory(split));
        return new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length);
    }

    [Fact]
    public void Any_run_of_blocks_reads_block_by_block_as_each_reads_alone()
    {
        Gen.Select(Gen.Int[0, Blocks.Length - 1], Gen.Frequency((4, Gen.Const(0)), (1, Gen.Int[1, 40]))).Array[1, 30].Sample(run =>
        {
            var reader = new HeaderBlockReader(Encoding.ASCII);
            foreach (var (index, split) in run)
            {
                var block = Sequence(Blocks[index], split);
                Assert.Equal(HeaderBlock.Read(block, Encoding.ASCII), reader.Read(block));
            }
        }, iter: 5_000);
    }

    [Fact]
    public void A_block_like_the_last_gives_the_very_type_string_it_gave()
    {
        var reader = new HeaderBlockReader(Encoding.ASCII);
        var first = reader.Read(Sequence(Blocks[0], 0)).Type;
        var again = reader.Read(Sequence(Blocks[0], 0)).Type;
        var after = reader.Read(Sequence(Blocks[3], 0)).Type;
        Assert.Equal("load.tick", first);
        Assert.Same(first, again);
        Assert.Same(first, after); // a new block spelling the same type: the known string (HeaderBlock.Read's knownType)
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory) => Memory = memory;

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
