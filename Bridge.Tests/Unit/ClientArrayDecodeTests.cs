using System.Text;
using Bridge.Client;
using Bridge.Client.Protocol;
using MessagePack;

namespace Bridge.Tests.Unit;

/// <summary>
/// The .NET client's reading of a batch subprotocol's array (docs/protocol.md §1): an element it cannot read costs only
/// that element, never the acks and room messages beside it.
/// </summary>
public sealed class ClientArrayDecodeTests
{
    [Fact]
    public void A_json_array_keeps_every_readable_element_in_order_and_reports_the_unreadable_ones()
    {
        var array = Encoding.UTF8.GetBytes("""
            [{"type":"ack","id":"p1","seq":1},5,{"type":"chat","room":"r","seq":-1},{"type":"chat","room":"r","seq":2,"payload":{"n":2}}]
            """);
        var skipped = new List<int>();

        var envelopes = FrameCodec.DecodeArray(array, BridgeFormat.Json, (index, _) => skipped.Add(index));

        Assert.Equal([("ack", 1UL), ("chat", 2UL)], envelopes.Select(e => (e.Type!, e.Seq ?? 0)));
        Assert.Equal([1, 2], skipped);
    }

    [Fact]
    public void A_msgpack_array_skips_an_unreadable_element_from_its_start_and_reads_on()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteArrayHeader(4);
        WriteEnvelope(ref writer, "ack", 1);
        writer.Write(5); // not a map
        writer.WriteMapHeader(2); // a seq this client cannot hold: fails after reading part of the map
        writer.Write("seq");
        writer.Write(-1);
        writer.Write("type");
        writer.Write("chat");
        WriteEnvelope(ref writer, "chat", 2);
        writer.Flush();
        var skipped = new List<int>();

        var envelopes = FrameCodec.DecodeArray(buffer.WrittenMemory, BridgeFormat.MessagePack, (index, _) => skipped.Add(index));

        Assert.Equal([("ack", 1UL), ("chat", 2UL)], envelopes.Select(e => (e.Type!, e.Seq ?? 0)));
        Assert.Equal([1, 2], skipped);
    }

    [Fact]
    public void A_message_that_is_not_an_array_is_still_refused_whole()
    {
        Assert.Throws<FormatException>(() => FrameCodec.DecodeArray(Encoding.UTF8.GetBytes("""{"type":"ack"}"""), BridgeFormat.Json));
        Assert.Throws<FormatException>(() => FrameCodec.DecodeArray(new byte[] { 0x05 }, BridgeFormat.MessagePack));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_one_element_array_the_live_case_allocates_no_more_than_its_frame_alone(bool messagePack)
    {
        // A list (and its array) per message would cost 88 B more than the frame alone; the run holds one inline.
        var format = messagePack ? BridgeFormat.MessagePack : BridgeFormat.Json;
        var (alone, array) = messagePack ? MessagePackFrames("chat", 7) : JsonFrames("""{"type":"chat","room":"r","seq":7,"payload":{"n":1}}""");
        FrameCodec.Decode(alone, format);
        FrameCodec.DecodeArray(array, format);

        var before = GC.GetAllocatedBytesForCurrentThread();
        var single = FrameCodec.Decode(alone, format);
        var singleBytes = GC.GetAllocatedBytesForCurrentThread() - before;
        before = GC.GetAllocatedBytesForCurrentThread();
        var run = FrameCodec.DecodeArray(array, format);
        var arrayBytes = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal([(single.Type, single.Seq)], run.Select(e => (e.Type, e.Seq)));
        Assert.True(arrayBytes <= singleBytes, $"the one-element array took {arrayBytes} B, the frame alone {singleBytes} B");
        Assert.False(run.HasList);
    }

    [Fact]
    public void An_array_of_several_keeps_them_all_in_order()
    {
        var run = FrameCodec.DecodeArray(Encoding.UTF8.GetBytes("""[{"type":"ack","seq":1},{"type":"ack","seq":2},{"type":"ack","seq":3}]"""), BridgeFormat.Json);

        Assert.Equal(3, run.Count);
        Assert.Equal([1UL, 2UL, 3UL], run.Select(e => e.Seq ?? 0));
        var seqs = new List<ulong>();
        foreach (var envelope in run)
        {
            seqs.Add(envelope.Seq ?? 0);
        }

        Assert.Equal([1UL, 2UL, 3UL], seqs);
        Assert.Empty(FrameCodec.DecodeArray(Encoding.UTF8.GetBytes("[5]"), BridgeFormat.Json));
    }

    private static (byte[] Alone, byte[] Array) JsonFrames(string frame) =>
        (Encoding.UTF8.GetBytes(frame), Encoding.UTF8.GetBytes("[" + frame + "]"));

    private static (byte[] Alone, byte[] Array) MessagePackFrames(string type, ulong seq)
    {
        var alone = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(alone);
        WriteEnvelope(ref writer, type, seq);
        writer.Flush();
        var array = new System.Buffers.ArrayBufferWriter<byte>();
        writer = new MessagePackWriter(array);
        writer.WriteArrayHeader(1);
        WriteEnvelope(ref writer, type, seq);
        writer.Flush();
        return (alone.WrittenSpan.ToArray(), array.WrittenSpan.ToArray());
    }

    private static void WriteEnvelope(ref MessagePackWriter writer, string type, ulong seq)
    {
        writer.WriteMapHeader(2);
        writer.Write("type");
        writer.Write(type);
        writer.Write("seq");
        writer.Write(seq);
    }
}
