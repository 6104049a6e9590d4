using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Bridge.Tests.Unit;

public sealed class SendQueueTests
{
    private static OutboundFrame Frame(int bytes = 10, string type = "x") => new(new byte[bytes], type);

    [Fact]
    public void Room_messages_stop_at_the_high_water_mark_and_answers_still_go_into_the_reserve_above_it()
    {
        var queue = new OutboundQueue(capacity: 8, maxBytes: 1000);
        var messages = 0;
        while (queue.TryEnqueueMessage(Frame()))
        {
            messages++;
        }

        Assert.Equal(8, messages);
        Assert.Equal((0, 1000 - 80), queue.RoomForMessages);
        Assert.True(queue.TryEnqueue(Frame()));
        Assert.True(queue.TryEnqueue(Frame()));
        Assert.False(queue.TryEnqueue(Frame()));
        Assert.Equal(10, queue.Count);

        // Written frames make room again, for answers first: room messages wait until the queue is below its mark.
        Assert.True(queue.Reader.TryRead(out var sent));
        queue.OnSent(sent);
        Assert.False(queue.TryEnqueueMessage(Frame()));
        Assert.True(queue.TryEnqueue(Frame()));
        for (var i = 0; i < 3; i++)
        {
            Assert.True(queue.Reader.TryRead(out sent));
            queue.OnSent(sent);
        }

        Assert.True(queue.TryEnqueueMessage(Frame()));
    }

    [Fact]
    public void A_run_of_room_messages_goes_in_up_to_the_same_bounds_as_one_at_a_time_and_in_order()
    {
        // Frames: 8 fit of 12 offered; the rest is refused, as TryEnqueueMessage would refuse it.
        var byFrames = new OutboundQueue(capacity: 8, maxBytes: 100_000);
        var run = Enumerable.Range(1, 12).Select(i => new OutboundFrame(new byte[10], "m", "r", (ulong)i, i)).ToArray();
        Assert.Equal(8, byFrames.TryEnqueueMessages(run));
        Assert.Equal(8, byFrames.Count);
        Assert.Equal(0, byFrames.TryEnqueueMessages(run));
        Assert.True(byFrames.TryEnqueue(Frame())); // the reserve for answers is still there
        for (var seq = 1UL; seq <= 8; seq++)
        {
            Assert.True(byFrames.Reader.TryRead(out var frame));
            Assert.Equal(seq, frame.Seq);
        }

        // Bytes: the bound applies to what is queued before each frame (so its bound plus one frame at most).
        var byBytes = new OutboundQueue(capacity: 100, maxBytes: 250);
        Assert.Equal(3, byBytes.TryEnqueueMessages(Enumerable.Repeat(Frame(100), 5).ToArray()));
        Assert.Equal(300, byBytes.QueuedBytes);
        Assert.False(byBytes.TryEnqueueMessage(Frame(1)));

        // Completed: nothing goes in, nothing stays counted.
        var closed = new OutboundQueue(capacity: 8, maxBytes: 1000);
        closed.Complete();
        Assert.Equal(0, closed.TryEnqueueMessages(run));
        Assert.Equal((0, 0L), (closed.Count, closed.QueuedBytes));
    }

    [Fact]
    public void A_conflated_member_refused_at_the_mark_is_told_once_when_the_queue_is_down_to_half_the_mark_not_one_frame_below_it()
    {
        var queue = new OutboundQueue(capacity: 100, maxBytes: 100_000, conflatedFrames: 8, conflatedBytes: 10_000);
        while (queue.TryEnqueueConflated(Frame()))
        {
        }

        Assert.Equal(8, queue.Count);
        var told = 0;
        queue.WhenDrained(() => told++);

        // One frame below the mark a conflated frame fits again, but the member is not woken for one value at a time.
        for (var sent = 1; sent <= 3; sent++)
        {
            Assert.True(queue.Reader.TryRead(out var frame));
            queue.OnSent(frame);
            Assert.Equal(0, told);
        }

        Assert.True(queue.Reader.TryRead(out var fourth));
        queue.OnSent(fourth);
        Assert.Equal(1, told);
        Assert.True(queue.Reader.TryRead(out var fifth));
        queue.OnSent(fifth);
        Assert.Equal(1, told);
    }

    [Fact]
    public void A_message_larger_than_the_room_left_still_goes_into_a_queue_below_its_mark_and_the_bytes_stay_bounded()
    {
        var queue = new OutboundQueue(capacity: 100, maxBytes: 1000);
        Assert.True(queue.TryEnqueueMessage(Frame(700)));
        Assert.True(queue.TryEnqueueMessage(Frame(700)));
        Assert.False(queue.TryEnqueueMessage(Frame(1)));
        Assert.False(queue.TryEnqueue(Frame(1)));
        Assert.Equal(1400, queue.QueuedBytes);
    }

    [Fact]
    public async Task A_connection_with_frames_waiting_and_none_written_for_the_stall_timeout_is_closed_with_4008_and_others_are_not()
    {
        using var stalls = new Stalls();
        var (time, detector) = (stalls.Time, stalls.Detector);
        ClientSession Open(string id) => stalls.Open(id);

        var stalled = Open("stalled");
        var slow = Open("slow");
        var idle = Open("idle");
        stalled.Send(Frame());
        slow.Send(Frame());
        slow.Send(Frame());
        await detector.StartAsync(CancellationToken.None);

        // The detector sweeps every second of the fake clock; the slow one writes a frame every 20 s.
        for (var second = 1; second <= 29; second++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            if (second == 20)
            {
                Assert.True(slow.Queue.Reader.TryRead(out var frame));
                slow.Queue.OnSent(frame);
            }
        }

        Assert.Null(stalled.CloseRequested);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(CloseCodes.SlowConsumer, stalled.CloseRequested?.Code);
        Assert.StartsWith("stalled", stalled.CloseRequested!.Reason, StringComparison.Ordinal);

        time.Advance(TimeSpan.FromSeconds(60));
        Assert.Null(idle.CloseRequested);
        // The slow one still had a frame waiting and wrote nothing after second 20: stalled too, by second 51.
        Assert.Equal(CloseCodes.SlowConsumer, slow.CloseRequested?.Code);
    }

    [Fact]
    public async Task A_connection_whose_queue_is_empty_but_whose_batch_flush_is_blocked_is_stalled_and_one_whose_flush_ended_is_not()
    {
        using var stalls = new Stalls();
        var (time, detector) = (stalls.Time, stalls.Detector);
        ClientSession Open(string id) => stalls.Open(id);

        // Both senders take their last frame and write it into the batch (counted as sent: the queue is empty), then
        // flush: the blocked one's client stopped reading, so its flush never ends; the other's ends at once.
        var blocked = Open("blocked");
        var flushed = Open("flushed");
        foreach (var session in new[] { blocked, flushed })
        {
            session.Send(Frame());
            Assert.True(session.Queue.Reader.TryRead(out var frame));
            session.Queue.OnSent(frame);
            Assert.Equal(0, session.Queue.Count);
            session.Queue.OnFlushStarted();
        }

        flushed.Queue.OnFlushEnded();
        await detector.StartAsync(CancellationToken.None);
        for (var second = 1; second <= 29; second++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
        }

        Assert.Null(blocked.CloseRequested);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.Equal(CloseCodes.SlowConsumer, blocked.CloseRequested?.Code);
        time.Advance(TimeSpan.FromSeconds(60));
        Assert.Null(flushed.CloseRequested);
    }

    /// <summary>A stall detector (30 s) over a tracker on a fake clock, and the sessions it watches.</summary>
    private sealed class Stalls : IDisposable
    {
        private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        private readonly ConnectionTracker _tracker;

        public Stalls()
        {
            _tracker = new ConnectionTracker(new BridgeMetrics(_services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), Time));
            Detector = new StallDetector(
                _tracker, Options.Create(new ConnectionOptions { StallTimeout = TimeSpan.FromSeconds(30) }), Time, NullLogger<StallDetector>.Instance);
        }

        public FakeTimeProvider Time { get; } = new();

        public StallDetector Detector { get; }

        public ClientSession Open(string id)
        {
            var session = Sessions.New(id);
            _tracker.Add(session);
            return session;
        }

        public void Dispose()
        {
            Detector.Dispose();
            _services.Dispose();
        }
    }
}
