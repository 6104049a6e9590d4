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

    private static void WriteEnvelope(ref MessagePackWriter writer, string type, ulong seq)
    {
        writer.WriteMapHeader(2);
        writer.Write("type");
        writer.Write(type);
        writer.Write("seq");
        writer.Write(seq);
    }
}
