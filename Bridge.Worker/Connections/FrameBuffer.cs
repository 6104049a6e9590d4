using System.Threading.Channels;
using System.Threading.Tasks.Sources;

namespace Bridge.Worker.Connections;

/// <summary>
/// The frames of one <see cref="OutboundQueue"/> in order, read by the connection's one send loop through the
/// <see cref="ChannelReader{T}"/> it already reads (<c>WaitToReadAsync</c>, <c>TryRead</c>, <c>Count</c>). Unlike a
/// channel it takes a run of frames in one step (<see cref="TryWriteMany"/>): one lock and at most one wake-up of the
/// send loop for a whole read of history, not one each per frame ("Replay, seventh pass (issue 14)"). It holds what it
/// is given: the bounds (frames, bytes) are the owning queue's, checked before it writes.
/// </summary>
internal sealed class FrameBuffer : ChannelReader<OutboundFrame>, IValueTaskSource<bool>
{
    /// <summary>
    /// A queue grown past this many frames (a batch's 1,000 <c>room.joined</c>, a replay's pages) gives its array back
    /// when it drains empty: 48 B a frame, kept for the connection's life otherwise (~49 B per room at 1,000 rooms per
    /// connection; docs/benchmarks.md, "Memory per room, sixth pass").
    /// </summary>
    internal const int TrimAbove = 256;

    /// <summary>At most one such trim per this many milliseconds: a replay that drains between its pages regrows at most once a second.</summary>
    internal const long TrimIntervalMs = 1_000;

    private readonly Lock _lock = new();
    private readonly Queue<OutboundFrame> _frames = new();
    private readonly long _trimIntervalMs;
    private long _trimmedAt = long.MinValue;
    // The send loop's one wait: reset by the send loop when it starts waiting, completed by whoever takes _waiting.
    private ManualResetValueTaskSourceCore<bool> _waiter = new() { RunContinuationsAsynchronously = true };
    private CancellationTokenRegistration _cancel;
    private bool _waiting;
    private bool _completed;

    /// <param name="trimIntervalMs">The least time between two trims of a drained queue (<see cref="TrimIntervalMs"/>; tests set their own).</param>
    public FrameBuffer(long trimIntervalMs = TrimIntervalMs) => _trimIntervalMs = trimIntervalMs;

    public override bool CanCount => true;

    public override int Count
    {
        get
        {
            lock (_lock)
            {
                return _frames.Count;
            }
        }
    }

    /// <summary>The queue's array size in frames (tests).</summary>
    internal int Capacity
    {
        get
        {
            lock (_lock)
            {
                return _frames.Capacity;
            }
        }
    }

    public override bool TryRead(out OutboundFrame item)
    {
        lock (_lock)
        {
            if (!_frames.TryDequeue(out item))
            {
                return false;
            }

            if (_frames.Count == 0 && _frames.Capacity > TrimAbove)
            {
                TrimDrained();
            }

            return true;
        }
    }

    // Called under the lock with the queue just drained empty and far above its usual size.
    private void TrimDrained()
    {
        var now = Environment.TickCount64;
        if (_trimmedAt == long.MinValue || now - _trimmedAt >= _trimIntervalMs)
        {
            _trimmedAt = now;
            _frames.TrimExcess();
        }
    }

    /// <summary>True once a frame can be read; false once the buffer is completed and empty. One caller at a time (the send loop).</summary>
    public override ValueTask<bool> WaitToReadAsync(CancellationToken cancellationToken = default)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled<bool>(cancellationToken);
        }

        lock (_lock)
        {
            if (_frames.Count > 0)
            {
                return new ValueTask<bool>(true);
            }

            if (_completed)
            {
                return new ValueTask<bool>(false);
            }

            if (_waiting)
            {
                throw new InvalidOperationException("the frame buffer has one reader: it is already waited on");
            }

            _waiter.Reset();
            _waiting = true;
        }

        var version = _waiter.Version;
        if (cancellationToken.CanBeCanceled)
        {
            var registration = cancellationToken.UnsafeRegister(
                static (state, token) => ((FrameBuffer)state!).Cancel(token), this);
            lock (_lock)
            {
                if (_waiting)
                {
                    (_cancel, registration) = (registration, default);
                }
            }

            // Woken (or cancelled) before the registration was kept: it has nothing left to cancel.
            registration.Unregister();
        }

        return new ValueTask<bool>(this, version);
    }

    /// <summary>Adds one frame and wakes the send loop if it waits; false once completed.</summary>
    public bool TryWrite(in OutboundFrame frame)
    {
        CancellationTokenRegistration cancel;
        lock (_lock)
        {
            if (_completed)
            {
                return false;
            }

            _frames.Enqueue(frame);
            if (!TakeWaiter(out cancel))
            {
                return true;
            }
        }

        Wake(cancel, true);
        return true;
    }

    /// <summary>Adds <paramref name="frames"/> in order in one step, waking the send loop at most once; false (none added) once completed.</summary>
    public bool TryWriteMany(ReadOnlySpan<OutboundFrame> frames)
    {
        CancellationTokenRegistration cancel;
        lock (_lock)
        {
            if (_completed)
            {
                return false;
            }

            foreach (ref readonly var frame in frames)
            {
                _frames.Enqueue(frame);
            }

            if (frames.IsEmpty || !TakeWaiter(out cancel))
            {
                return true;
            }
        }

        Wake(cancel, true);
        return true;
    }

    /// <summary>No frame is added from now on; the send loop reads what is left, then its wait answers false.</summary>
    public void Complete()
    {
        CancellationTokenRegistration cancel;
        lock (_lock)
        {
            _completed = true;
            // A waiting send loop means nothing is left: it is told the buffer is done.
            if (!TakeWaiter(out cancel))
            {
                return;
            }
        }

        Wake(cancel, false);
    }

    private void Cancel(CancellationToken token)
    {
        CancellationTokenRegistration cancel;
        lock (_lock)
        {
            if (!TakeWaiter(out cancel))
            {
                return;
            }
        }

        // Unregistering from inside the callback returns at once (Dispose would wait for this very callback).
        cancel.Unregister();
        _waiter.SetException(new OperationCanceledException(token));
    }

    // Called under the lock: the one caller that takes the waiting send loop completes its wait.
    private bool TakeWaiter(out CancellationTokenRegistration cancel)
    {
        cancel = default;
        if (!_waiting)
        {
            return false;
        }

        _waiting = false;
        (cancel, _cancel) = (_cancel, default);
        return true;
    }

    private void Wake(CancellationTokenRegistration cancel, bool result)
    {
        cancel.Unregister();
        _waiter.SetResult(result);
    }

    bool IValueTaskSource<bool>.GetResult(short token) => _waiter.GetResult(token);

    ValueTaskSourceStatus IValueTaskSource<bool>.GetStatus(short token) => _waiter.GetStatus(token);

    void IValueTaskSource<bool>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _waiter.OnCompleted(continuation, state, token, flags);
}
