using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Bridge.Worker.Connections;
using Bridge.Worker.Transports.Sse;

namespace Bridge.Tests.Unit;

/// <summary>
/// The SSE writer frames events into a region of the response's writer and advances it once per region (issue 14): the
/// bytes must stay exactly the documented format (docs/protocol.md §6), ids included, wherever a region ends.
/// </summary>
public sealed class SseEventWriterTests
{
    [Fact]
    public async Task A_batch_of_events_is_written_byte_for_byte_in_the_documented_format_across_region_boundaries()
    {
        var frames = new List<OutboundFrame> { Frame("welcome", """{"type":"welcome"}""") };
        var expected = new StringBuilder("event: welcome\ndata: {\"type\":\"welcome\"}\n\n");
        frames.Add(Frame("room.joined", """{"type":"room.joined","room":"r"}""", "r", 41));
        expected.Append("id: 41\nevent: room.joined\ndata: {\"type\":\"room.joined\",\"room\":\"r\"}\n\n");
        for (var seq = 42UL; seq < 400; seq++)
        {
            // Every length from a few bytes to one larger than the pipe's segments, types alternating in runs.
            var type = seq % 50 < 25 ? "chat.message" : "x";
            var json = $$"""{"seq":{{seq}},"text":"{{new string('a', (int)(seq * 7 % 600))}}"}""";
            frames.Add(Frame(type, json, "r", seq));
            expected.Append($"id: {seq}\nevent: {type}\ndata: {json}\n\n");
            if (seq % 97 == 0)
            {
                frames.Add(new OutboundFrame(": heartbeat\n\n"u8.ToArray(), SseEventWriter.HeartbeatType));
                expected.Append(": heartbeat\n\n");
            }
        }

        var big = $$"""{"text":"{{new string('b', 5000)}}"}""";
        frames.Add(Frame("chat.message", big, "r", ulong.MaxValue));
        expected.Append($"id: {ulong.MaxValue}\nevent: chat.message\ndata: {big}\n\n");

        Assert.Equal(expected.ToString(), await WriteAsync(["r"], frames));
    }

    [Fact]
    public async Task With_several_rooms_each_id_is_the_cursor_over_every_room_in_join_order()
    {
        List<OutboundFrame> frames =
        [
            Frame("room.joined", "{}", "b", 7),
            Frame("m", "{}", "a", 3),
            Frame("error", "{}"),
            Frame("m", "{}", "b", 8),
        ];

        Assert.Equal(
            "id: b=7\nevent: room.joined\ndata: {}\n\nid: a=3,b=7\nevent: m\ndata: {}\n\nevent: error\ndata: {}\n\nid: a=3,b=8\nevent: m\ndata: {}\n\n",
            await WriteAsync(["a", "b"], frames));
    }

    [Fact]
    public async Task Nothing_reaches_the_response_before_a_commit_and_a_commit_resets_what_counts_as_unflushed()
    {
        var pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        var events = new SseEventWriter(pipe.Writer, ["r"], []);
        events.Write(Frame("m", "{}", "r", 1));
        Assert.Equal(Encoding.ASCII.GetByteCount("id: 1\nevent: m\ndata: {}\n\n"), events.Unflushed);
        await pipe.Writer.FlushAsync();
        Assert.False(pipe.Reader.TryRead(out _));

        events.Commit();
        Assert.Equal(0, events.Unflushed);
        await pipe.Writer.FlushAsync();
        Assert.True(pipe.Reader.TryRead(out var read));
        Assert.Equal("id: 1\nevent: m\ndata: {}\n\n", Encoding.ASCII.GetString(read.Buffer.ToArray()));
    }

    private static OutboundFrame Frame(string type, string json, string? room = null, ulong seq = 0) =>
        new(Encoding.UTF8.GetBytes(json), type, room, seq);

    private static async Task<string> WriteAsync(List<string> rooms, List<OutboundFrame> frames)
    {
        // Small segments: many events end a region, and one event is larger than any segment.
        var pipe = new Pipe(new PipeOptions(minimumSegmentSize: 512, pauseWriterThreshold: 0, useSynchronizationContext: false));
        var events = new SseEventWriter(pipe.Writer, rooms, []);
        foreach (var frame in frames)
        {
            events.Write(frame);
        }

        events.Commit();
        await pipe.Writer.CompleteAsync();
        var bytes = new ArrayBufferWriter<byte>();
        while (true)
        {
            var read = await pipe.Reader.ReadAsync();
            foreach (var segment in read.Buffer)
            {
                bytes.Write(segment.Span);
            }

            pipe.Reader.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted)
            {
                return Encoding.UTF8.GetString(bytes.WrittenSpan);
            }
        }
    }
}
