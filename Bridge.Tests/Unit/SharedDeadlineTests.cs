using System.Diagnostics;
using Bridge.Worker.Nats;

namespace Bridge.Tests.Unit;

/// <summary>The shared deadline that bounds NATS writes without a timer per call (never early; always, eventually).</summary>
public sealed class SharedDeadlineTests
{
    [Fact]
    public async Task Tokens_are_cancelled_no_sooner_than_one_window_after_they_are_taken_and_always_are()
    {
        var window = TimeSpan.FromMilliseconds(317);
        var deadline = SharedDeadline.Of(window);
        Assert.Same(deadline, SharedDeadline.Of(window));

        var took = new List<Task<TimeSpan>>();
        for (var i = 0; i < 5; i++)
        {
            var taken = Stopwatch.StartNew();
            var cancelled = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
            deadline.Token.Register(() => cancelled.TrySetResult(taken.Elapsed));
            took.Add(cancelled.Task);
            await Task.Delay(window / 3);
        }

        foreach (var elapsed in await Task.WhenAll(took).WaitAsync(TimeSpan.FromSeconds(30)))
        {
            // Never early (a late timer on a loaded machine only makes it later); a few ms for the clocks' resolution.
            Assert.True(elapsed >= window - TimeSpan.FromMilliseconds(20), $"cancelled {elapsed} after it was taken");
        }
    }

    [Fact]
    public void A_window_that_is_not_positive_is_refused() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => SharedDeadline.Of(TimeSpan.Zero));
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class StarvedPoolCollection
{
    // Blocks the thread pool for a moment: run alone, so no other test waits behind it.
    public const string Name = "starved thread pool";
}

/// <summary>The shared deadline on a starved thread pool, where a timer's ticks wait in the pool's queue.</summary>
[Collection(StarvedPoolCollection.Name)]
public sealed class SharedDeadlineStarvedPoolTests
{
    [Fact]
    public async Task Ticks_held_up_by_a_starved_thread_pool_never_cancel_a_token_early()
    {
        // A window of its own (the deadlines are per window, for the whole process).
        var window = TimeSpan.FromMilliseconds(53);
        var deadline = SharedDeadline.Of(window);
        await Task.Delay(window * 2);

        // Every pool thread blocked for several windows: the timer's ticks queue behind them. A periodic timer queues one
        // per window whether or not the last ran, and they then run back to back when the pool frees up.
        using var release = new ManualResetEventSlim();
        var blockers = Enumerable.Range(0, ThreadPool.ThreadCount + 8)
            .Select(_ => Task.Factory.StartNew(() => release.Wait(TimeSpan.FromSeconds(10)), CancellationToken.None, TaskCreationOptions.None, TaskScheduler.Default))
            .ToArray();
        Thread.Sleep(window * 6);

        var taken = Stopwatch.StartNew();
        var cancelled = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        deadline.Token.Register(() => cancelled.TrySetResult(taken.Elapsed));
        release.Set();
        await Task.WhenAll(blockers).WaitAsync(TimeSpan.FromSeconds(30));

        var elapsed = await cancelled.Task.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.True(elapsed >= window - TimeSpan.FromMilliseconds(20), $"cancelled {elapsed} after it was taken");
    }
}
