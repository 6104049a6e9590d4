namespace Bridge.Worker.Rooms;

/// <summary>
/// A one-shot timer armed for a clock timestamp (conflation's trailing edges: <see cref="ConflationGroup"/>,
/// <see cref="ConflatedMember"/>), made on first use. Not thread-safe: its owner calls it under its lock, and its
/// callback must call <see cref="Fired"/> under that lock first.
/// </summary>
internal sealed class DueTimer(TimeProvider time, TimerCallback callback, object state) : IDisposable
{
    /// <summary>
    /// The longest wait a runtime timer takes (<see cref="uint.MaxValue"/> − 1 ms, about 49.7 days); a longer one is
    /// armed for this long and fires early, which its owner's callback takes as nothing due yet (it arms it again).
    /// </summary>
    public static readonly TimeSpan MaxWait = TimeSpan.FromMilliseconds(uint.MaxValue - 1);

    private ITimer? _timer;

    /// <summary>The timestamp it is armed for; <see cref="long.MaxValue"/> when it is not armed.</summary>
    public long Due { get; private set; } = long.MaxValue;

    /// <summary>True once it was made, until disposed.</summary>
    public bool Exists => _timer is not null;

    /// <summary>Arms it for <paramref name="due"/> (at once when that has passed); nothing to do when it is armed for it already.</summary>
    public void Arm(long due)
    {
        if (due == Due)
        {
            return;
        }

        Due = due;
        var wait = time.GetElapsedTime(time.GetTimestamp(), due);
        if (wait < TimeSpan.Zero)
        {
            wait = TimeSpan.Zero;
        }
        else if (wait > MaxWait)
        {
            wait = MaxWait;
        }

        if (_timer is null)
        {
            _timer = time.CreateTimer(callback, state, wait, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _timer.Change(wait, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Called by the callback: it is no longer armed.</summary>
    public void Fired() => Due = long.MaxValue;

    public void Stop()
    {
        if (Due == long.MaxValue)
        {
            // Never armed, fired, or stopped already: a one-shot timer that will not fire (or fires once more, which its
            // owner's callback takes as nothing due). Skipping the change spares the runtime's timer lock on every
            // refused conflated send (issue 16 §3).
            return;
        }

        Due = long.MaxValue;
        _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    public void Dispose()
    {
        Due = long.MaxValue;
        _timer?.Dispose();
        _timer = null;
    }
}
