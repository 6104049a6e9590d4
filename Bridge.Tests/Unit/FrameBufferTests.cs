using Bridge.Worker.Connections;

namespace Bridge.Tests.Unit;

/// <summary>
/// The send queue's frames (<see cref="FrameBuffer"/>) as its one send loop reads them: a wait answers once frames are
/// there (all of a run written in one step), cancelling a wait leaves the buffer usable, and completion lets the send
/// loop read what is left before its wait answers false.
/// </summary>
public sealed class FrameBufferTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private static OutboundFrame Frame(ulong seq) => new([1], "m", "r", seq, 1);

    private static List<ulong> Drain(FrameBuffer buffer)
    {
        var seqs = new List<ulong>();
        while (buffer.TryRead(out var frame))
        {
            seqs.Add(frame.Seq);
        }

        return seqs;
    }

    [Fact]
    public async Task A_waiting_send_loop_is_woken_by_one_frame_and_by_a_run_and_finds_the_whole_run_there_in_order()
    {
        var buffer = new FrameBuffer();
        var wait = buffer.WaitToReadAsync(CancellationToken.None).AsTask();
        Assert.False(wait.IsCompleted);
        Assert.True(buffer.TryWrite(Frame(1)));
        Assert.True(await wait.WaitAsync(Patience));
        Assert.Equal([1UL], Drain(buffer));

        wait = buffer.WaitToReadAsync(CancellationToken.None).AsTask();
        Assert.False(wait.IsCompleted);
        Assert.True(buffer.TryWriteMany([Frame(2), Frame(3), Frame(4)]));
        Assert.True(await wait.WaitAsync(Patience));
        Assert.Equal(3, buffer.Count);
        Assert.Equal([2UL, 3UL, 4UL], Drain(buffer));

        // Frames already there: the wait answers at once.
        Assert.True(buffer.TryWrite(Frame(5)));
        var ready = buffer.WaitToReadAsync(CancellationToken.None).AsTask();
        Assert.True(ready.IsCompletedSuccessfully && await ready);
    }

    [Fact]
    public async Task A_cancelled_wait_throws_and_the_next_wait_is_woken_by_the_next_frame()
    {
        var buffer = new FrameBuffer();
        using var cancel = new CancellationTokenSource();
        var wait = buffer.WaitToReadAsync(cancel.Token).AsTask();
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => wait.WaitAsync(Patience));

        // Many waits on one long-lived token, each woken by a frame: none of them is left registered to cancel later.
        using var closing = new CancellationTokenSource();
        for (var i = 1UL; i <= 100; i++)
        {
            var next = buffer.WaitToReadAsync(closing.Token).AsTask();
            Assert.True(buffer.TryWrite(Frame(i)));
            Assert.True(await next.WaitAsync(Patience));
            Assert.Equal([i], Drain(buffer));
        }

        var last = buffer.WaitToReadAsync(closing.Token).AsTask();
        await closing.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => last.WaitAsync(Patience));
        Assert.True(buffer.TryWrite(Frame(101)));
        Assert.True(await buffer.WaitToReadAsync(CancellationToken.None).AsTask().WaitAsync(Patience));
    }

    [Fact]
    public async Task Completion_wakes_a_waiting_send_loop_with_false_and_leaves_queued_frames_to_read_first()
    {
        var buffer = new FrameBuffer();
        var wait = buffer.WaitToReadAsync(CancellationToken.None).AsTask();
        buffer.Complete();
        Assert.False(await wait.WaitAsync(Patience));
        Assert.False(buffer.TryWrite(Frame(1)));
        Assert.False(buffer.TryWriteMany([Frame(1)]));

        var other = new FrameBuffer();
        Assert.True(other.TryWriteMany([Frame(1), Frame(2)]));
        other.Complete();
        Assert.True(await other.WaitToReadAsync(CancellationToken.None));
        Assert.Equal([1UL, 2UL], Drain(other));
        Assert.False(await other.WaitToReadAsync(CancellationToken.None));
    }

    [Fact]
    public void A_queue_grown_by_a_batch_gives_its_array_back_when_drained_but_at_most_once_per_interval()
    {
        static OutboundFrame[] Run(int count) => [.. Enumerable.Range(1, count).Select(i => Frame((ulong)i))];

        // A batch's 1,000 room.joined grow the queue; drained empty, its array goes back.
        var buffer = new FrameBuffer(trimIntervalMs: long.MaxValue / 2);
        Assert.True(buffer.TryWriteMany(Run(1_000)));
        Assert.True(buffer.Capacity >= 1_000);
        Assert.Equal(1_000, Drain(buffer).Count);
        Assert.Equal(0, buffer.Capacity);

        // Within the interval the next big run keeps its array (a replay's pages do not regrow it each time).
        Assert.True(buffer.TryWriteMany(Run(1_000)));
        Assert.Equal(1_000, Drain(buffer).Count);
        Assert.True(buffer.Capacity >= 1_000);

        // A queue at its usual size is never trimmed.
        var usual = new FrameBuffer(trimIntervalMs: 0);
        Assert.True(usual.TryWriteMany(Run(FrameBuffer.TrimAbove)));
        var capacity = usual.Capacity;
        Assert.Equal(FrameBuffer.TrimAbove, Drain(usual).Count);
        Assert.Equal(capacity, usual.Capacity);

        // Past the interval a drained queue is trimmed again.
        var again = new FrameBuffer(trimIntervalMs: 0);
        for (var i = 0; i < 2; i++)
        {
            Assert.True(again.TryWriteMany(Run(1_000)));
            Assert.Equal(1_000, Drain(again).Count);
            Assert.Equal(0, again.Capacity);
        }
    }
}
