using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;

namespace Bridge.Tests.Unit;

/// <summary>
/// A connection's background work (joins, syncs, catch-ups) is counted, not kept in a set of tasks: leaving all rooms
/// must still wait for every piece of it, however it ends, and a request slot must come back when its work ends.
/// </summary>
public sealed class BackgroundWorkTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Leaving_all_rooms_waits_for_requests_and_catch_ups_still_running_however_they_end()
    {
        var session = Sessions.New("c1");
        var request = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var catchUp = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var failing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await session.StartBackgroundAsync(_ => request.Task, CancellationToken.None);
        await session.StartBackgroundAsync(_ => failing.Task, CancellationToken.None);
        session.StartBackground(_ => catchUp.Task);

        var leaving = session.LeaveAllRoomsAsync();
        failing.SetException(new InvalidOperationException("a request that fails"));
        request.SetResult();
        await EndsOnlyAfterAsync(leaving, catchUp);
    }

    [Fact]
    public async Task A_second_leave_all_waits_for_work_started_after_the_first_one_ended()
    {
        var session = Sessions.New("c1");
        await session.LeaveAllRoomsAsync().WaitAsync(Patience); // nothing running: at once

        var later = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        session.StartBackground(_ => later.Task);
        await EndsOnlyAfterAsync(session.LeaveAllRoomsAsync(), later);
    }

    [Fact]
    public async Task A_request_slot_comes_back_when_its_work_ends_and_the_next_request_waits_for_it()
    {
        var session = Sessions.New("c1", maxConcurrentRequests: 1);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ran = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        await session.StartBackgroundAsync(static (state, _) => new ValueTask(state), first.Task, CancellationToken.None);

        var second = session.StartBackgroundAsync(static (ran, _) => { ran.SetResult("second"); return ValueTask.CompletedTask; }, ran, CancellationToken.None).AsTask();
        await Task.Delay(100);
        Assert.False(second.IsCompleted);

        first.SetException(new InvalidOperationException("the first request fails"));
        await second.WaitAsync(Patience);
        Assert.Equal("second", await ran.Task.WaitAsync(Patience));
    }

    [Fact]
    public async Task A_request_waiting_for_a_slot_when_the_connection_closes_never_runs_and_leaving_waits_for_the_running_one()
    {
        var session = Sessions.New("c1", maxConcurrentRequests: 1);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var ran = 0;
        await session.StartBackgroundAsync(_ => first.Task, session.Closing);
        var waiting = session.StartBackgroundAsync(_ => { Interlocked.Increment(ref ran); return Task.CompletedTask; }, session.Closing).AsTask();
        await Task.Delay(50);
        Assert.False(waiting.IsCompleted);

        session.RequestClose(Bridge.Contracts.CloseCodes.Normal, "done");
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Patience));
        await EndsOnlyAfterAsync(session.LeaveAllRoomsAsync(), first);
        Assert.Equal(0, Volatile.Read(ref ran));
    }

    [Fact]
    public async Task A_batch_started_while_the_slots_were_busy_takes_the_slots_that_free_up_while_its_items_wait()
    {
        var session = Sessions.New("c1", maxConcurrentRequests: 3);
        var others = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await session.StartBackgroundAsync(_ => others.Task, CancellationToken.None);
        await session.StartBackgroundAsync(_ => others.Task, CancellationToken.None); // two of three slots taken: one lane

        var (items, started) = await StartBatchAsync(session, 8);
        await WaitUntilAsync(() => started.Count == 1);

        // The other requests end: their slots come free. After an item of its own ends, the lane opens lanes on them, so
        // soon three items run at once (never more: three slots). Without that the batch stays on one lane.
        others.SetResult();
        var ended = 0;
        var three = false;
        while (!three && ended < 5)
        {
            items[ended++].SetResult();
            await WaitUntilAsync(() => started.Count >= ended + 1);
            await Task.Delay(100);
            Assert.InRange(started.Count - ended, 1, 3);
            three = started.Count - ended == 3;
        }

        Assert.True(three, $"the batch ran on {started.Count - ended} lane(s) with the slots free");
        foreach (var item in items)
        {
            item.TrySetResult();
        }

        await WaitUntilAsync(() => started.Count == items.Length);
        Assert.Equal(Enumerable.Range(0, items.Length), started.Order());
        await session.LeaveAllRoomsAsync().WaitAsync(Patience); // every lane counted out
    }

    [Fact]
    public async Task A_batch_runs_on_the_free_request_slots_only_each_item_once_and_past_a_failing_one()
    {
        var session = Sessions.New("c1", maxConcurrentRequests: 3);
        var other = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await session.StartBackgroundAsync(_ => other.Task, CancellationToken.None); // one slot taken: two are free

        var (items, started) = await StartBatchAsync(session, 7);

        // Two lanes: two items at a time, the next starting when one ends (failed or not).
        await WaitUntilAsync(() => started.Count == 2);
        await Task.Delay(100);
        Assert.Equal(2, started.Count);
        items[started.First()].SetException(new InvalidOperationException("an item that fails"));
        await WaitUntilAsync(() => started.Count == 3);
        foreach (var item in items)
        {
            item.TrySetResult();
        }

        await WaitUntilAsync(() => started.Count == items.Length);
        Assert.Equal(Enumerable.Range(0, items.Length), started.Order());

        // The lanes gave their slots back: with the other request ended too, three requests start, a fourth waits.
        other.SetResult();
        var blocking = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await session.StartBackgroundAsync(_ => blocking.Task, CancellationToken.None).AsTask().WaitAsync(Patience);
        await session.StartBackgroundAsync(_ => blocking.Task, CancellationToken.None).AsTask().WaitAsync(Patience);
        await session.StartBackgroundAsync(_ => blocking.Task, CancellationToken.None).AsTask().WaitAsync(Patience);
        var fourth = session.StartBackgroundAsync(_ => Task.CompletedTask, CancellationToken.None).AsTask();
        await Task.Delay(100);
        Assert.False(fourth.IsCompleted);
        blocking.SetResult();
        await fourth.WaitAsync(Patience);
    }

    [Fact]
    public async Task Leaving_all_rooms_waits_for_a_batch_and_a_closing_connection_starts_none_of_its_items_left()
    {
        var session = Sessions.New("c1", maxConcurrentRequests: 1);
        var first = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var started = 0;
        await session.StartBackgroundBatchAsync(
            [first, new TaskCompletionSource(), new TaskCompletionSource()],
            (item, _) =>
            {
                Interlocked.Increment(ref started);
                return new ValueTask(item.Task);
            },
            CancellationToken.None);

        session.RequestClose(Bridge.Contracts.CloseCodes.Normal, "done");
        await EndsOnlyAfterAsync(session.LeaveAllRoomsAsync(), first);
        Assert.Equal(1, Volatile.Read(ref started));
    }

    /// <summary>A batch of <paramref name="count"/> items, each running until its source is completed; started: in start order.</summary>
    private static async Task<(TaskCompletionSource[] Items, System.Collections.Concurrent.ConcurrentQueue<int> Started)> StartBatchAsync(
        ClientSession session, int count)
    {
        var items = Enumerable.Range(0, count).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        var started = new System.Collections.Concurrent.ConcurrentQueue<int>();
        await session.StartBackgroundBatchAsync(
            Enumerable.Range(0, count).ToArray(),
            (i, _) =>
            {
                started.Enqueue(i);
                return new ValueTask(items[i].Task);
            },
            CancellationToken.None);
        return (items, started);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "the condition did not hold in time");
            await Task.Delay(10);
        }
    }

    /// <summary><paramref name="leaving"/> is still waiting while <paramref name="work"/> runs, and ends once it does.</summary>
    private static async Task EndsOnlyAfterAsync(Task leaving, TaskCompletionSource work)
    {
        await Task.Delay(100);
        Assert.False(leaving.IsCompleted);

        work.SetResult();
        await leaving.WaitAsync(Patience);
    }
}
