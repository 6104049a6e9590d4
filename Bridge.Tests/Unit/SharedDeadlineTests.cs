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
