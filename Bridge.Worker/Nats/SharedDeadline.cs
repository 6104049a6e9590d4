namespace Bridge.Worker.Nats;

/// <summary>
/// A deadline shared by every caller that takes its <see cref="Token"/> within the same window: the token is cancelled
/// between one and two <see cref="Window"/>s after it is taken. One timer and one <see cref="CancellationTokenSource"/>
/// per window for the whole process, none per call: for bounds that must always hold but almost never fire (a NATS
/// write the connection accepts at once unless the server is frozen or gone).
/// </summary>
internal sealed class SharedDeadline
{
    private static readonly Dictionary<TimeSpan, SharedDeadline> Shared = [];

    private readonly Lock _gate = new();
    private readonly Timer _timer;
    private CancellationTokenSource _current = new();
    private CancellationTokenSource _previous = new();

    private SharedDeadline(TimeSpan window)
    {
        Window = window;
        // One-shot, armed again by each tick once it has run: a periodic timer queues its ticks to the thread pool on
        // time whether or not the last one ran, so on a starved pool two could run back to back and cancel a token
        // taken just before them at once (seen in CI under load: cancelled 0.8 ms after it was taken).
        _timer = new Timer(static state => ((SharedDeadline)state!).Rotate(), this, window, Timeout.InfiniteTimeSpan);
    }

    /// <summary>The shortest time to the cancellation of a token taken now; the longest is twice as long.</summary>
    public TimeSpan Window { get; }

    /// <summary>Cancelled between one and two <see cref="Window"/>s from now.</summary>
    public CancellationToken Token => Volatile.Read(ref _current).Token;

    /// <summary>The process's deadline of <paramref name="window"/> (one timer per distinct window, living as long as the process).</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="window"/> is not positive.</exception>
    public static SharedDeadline Of(TimeSpan window)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(window, TimeSpan.Zero);
        lock (Shared)
        {
            if (!Shared.TryGetValue(window, out var deadline))
            {
                Shared[window] = deadline = new SharedDeadline(window);
            }

            return deadline;
        }
    }

    // Each tick cancels the tokens handed out during the window before the last one: taken at least one window ago,
    // since ticks run at least one window apart (the next is armed only when this one runs).
    private void Rotate()
    {
        CancellationTokenSource expired;
        lock (_gate)
        {
            expired = _previous;
            _previous = _current;
            Volatile.Write(ref _current, new CancellationTokenSource());
        }

        try
        {
            expired.Cancel();
        }
        catch (AggregateException)
        {
            // A registration's callback threw; the others ran. Nothing to do on a timer thread.
        }
        finally
        {
            _timer.Change(Window, Timeout.InfiniteTimeSpan);
        }
    }
}
