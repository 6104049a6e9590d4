using Bridge.Worker.Connections;

namespace Bridge.Tests.Unit;

/// <summary>
/// A connection's request slots (protocol §4, <c>MaxConcurrentRequests</c>) reuse one waiter from one wait to the next:
/// each slot given back must still go to exactly one waiter, in the order they came, and a cancelled wait must neither
/// take a slot nor keep its place.
/// </summary>
public sealed class RequestSlotsTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Each_slot_given_back_goes_to_one_waiter_in_the_order_they_came()
    {
        var slots = new RequestSlots(1);
        Assert.True(slots.TryTake());
        Assert.False(slots.TryTake());

        // Overlapping waits: the reused waiter and fresh ones.
        var waits = Enumerable.Range(0, 3).Select(_ => slots.TakeAsync(CancellationToken.None).AsTask()).ToArray();
        await Task.Delay(50);
        Assert.All(waits, w => Assert.False(w.IsCompleted));

        for (var i = 0; i < waits.Length; i++)
        {
            slots.Release();
            await waits[i].WaitAsync(Patience);
            Assert.All(waits.Skip(i + 1), w => Assert.False(w.IsCompleted));
            Assert.False(slots.TryTake()); // handed over, not freed
        }

        slots.Release();
        Assert.True(slots.TryTake());
    }

    [Fact]
    public async Task A_cancelled_wait_throws_takes_no_slot_and_the_next_waiter_gets_the_slot_given_back()
    {
        var slots = new RequestSlots(1);
        await slots.TakeAsync(CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var cancelled = slots.TakeAsync(cancel.Token).AsTask();
        var next = slots.TakeAsync(CancellationToken.None).AsTask();

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Patience));
        Assert.False(next.IsCompleted);

        slots.Release();
        await next.WaitAsync(Patience);
        Assert.False(slots.TryTake());
        slots.Release();
        Assert.True(slots.TryTake());

        // Already cancelled: refused at once, nothing queued.
        slots.Release();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => slots.TakeAsync(cancel.Token).AsTask());
        Assert.True(slots.TryTake());
    }

    [Fact]
    public async Task One_loop_waits_again_and_again_on_its_reused_waiter_each_wait_ending_once_with_its_slot()
    {
        // What a receive loop does while a burst of single joins keeps every slot busy: take, start, take again.
        var slots = new RequestSlots(2);
        using var closing = new CancellationTokenSource();
        var running = 0;
        var maxRunning = 0;
        var ended = 0;
        for (var i = 0; i < 500; i++)
        {
            await slots.TakeAsync(closing.Token).AsTask().WaitAsync(Patience);
            var now = Interlocked.Increment(ref running);
            maxRunning = Math.Max(maxRunning, now);
            _ = Task.Run(async () =>
            {
                await Task.Yield();
                Interlocked.Decrement(ref running);
                Interlocked.Increment(ref ended);
                slots.Release();
            });
        }

        await slots.TakeAsync(closing.Token).AsTask().WaitAsync(Patience);
        await slots.TakeAsync(closing.Token).AsTask().WaitAsync(Patience);
        Assert.Equal(500, Volatile.Read(ref ended));
        Assert.True(maxRunning <= 2, $"{maxRunning} ran at once with two slots");

        // Every slot is taken: a wait on the loop's token ends when it is cancelled (the connection closing).
        var waiting = slots.TakeAsync(closing.Token).AsTask();
        await closing.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Patience));
    }
}
