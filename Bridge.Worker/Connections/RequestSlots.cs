using System.Threading.Tasks.Sources;

namespace Bridge.Worker.Connections;

/// <summary>
/// A connection's request slots (protocol §4, <c>MaxConcurrentRequests</c>): at most that many requests run at once,
/// and a request that finds none free waits for the next one given back, first come first served. A semaphore whose
/// wait allocates nothing in the common case: the waiters are the connection's receive loop or its stream transport's
/// join loop, one request at a time, and while the slots are full each of their requests waits (a 1,000-room burst of
/// single joins waits ~1,000 times); <see cref="SemaphoreSlim.WaitAsync(CancellationToken)"/> allocates a node, an async
/// box and a cancellation promise per wait. Here a waiter is an object reused from one wait to the next; only waiters
/// that overlap (never from one loop) take new ones.
/// </summary>
internal sealed class RequestSlots
{
    private readonly Lock _gate = new();
    private readonly Queue<Waiter> _waiters = new();
    private int _free;

    // The waiter the next wait takes, returned by the last one when its wait has been read; null while in use.
    private Waiter? _spare;

    public RequestSlots(int count)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(count, 1);
        _free = count;
        _spare = new Waiter(this);
    }

    /// <summary>Takes a free slot at once; false when none is free (nobody waits then).</summary>
    public bool TryTake()
    {
        lock (_gate)
        {
            if (_free == 0 || _waiters.Count > 0)
            {
                return false;
            }

            _free--;
            return true;
        }
    }

    /// <summary>Takes a slot, waiting for one given back when none is free.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled before a slot was taken.</exception>
    public ValueTask TakeAsync(CancellationToken cancellationToken)
    {
        if (cancellationToken.IsCancellationRequested)
        {
            return ValueTask.FromCanceled(cancellationToken);
        }

        lock (_gate)
        {
            if (_free > 0 && _waiters.Count == 0)
            {
                _free--;
                return ValueTask.CompletedTask;
            }

            var waiter = _spare ?? new Waiter(this);
            _spare = null;
            _waiters.Enqueue(waiter);
            // Registered under the gate (it is re-entrant): a cancel, even one run right here, finds the waiter queued,
            // and a release cannot complete it before its cancellation is registered.
            return waiter.Wait(cancellationToken);
        }
    }

    /// <summary>Gives a slot back: to the first waiter, or to the free ones.</summary>
    public void Release()
    {
        Waiter? next;
        lock (_gate)
        {
            if (!_waiters.TryDequeue(out next))
            {
                _free++;
                return;
            }
        }

        next.Complete(null);
    }

    /// <summary>A waiter cancelled: taken out of the queue unless a slot was handed to it meanwhile (then it keeps it).</summary>
    private void Cancel(Waiter waiter, CancellationToken cancellationToken)
    {
        lock (_gate)
        {
            if (!waiter.IsWaitingOn(cancellationToken) || !_waiters.Contains(waiter))
            {
                return;
            }

            // Few waiters (one per loop): rebuilt without it.
            var count = _waiters.Count;
            for (var i = 0; i < count; i++)
            {
                var w = _waiters.Dequeue();
                if (!ReferenceEquals(w, waiter))
                {
                    _waiters.Enqueue(w);
                }
            }
        }

        waiter.Complete(new OperationCanceledException(cancellationToken));
    }

    private void Return(Waiter waiter)
    {
        lock (_gate)
        {
            _spare ??= waiter;
        }
    }

    /// <summary>One wait at a time, reusable once its result has been read.</summary>
    private sealed class Waiter(RequestSlots slots) : IValueTaskSource
    {
        private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
        private CancellationTokenRegistration _cancellation;

        private CancellationToken _token;

        public bool IsWaitingOn(CancellationToken cancellationToken) => _token == cancellationToken;

        public ValueTask Wait(CancellationToken cancellationToken)
        {
            _token = cancellationToken;
            var version = _core.Version;
            _cancellation = cancellationToken.UnsafeRegister(static (state, token) => ((Waiter)state!).Cancelled(token), this);
            return new ValueTask(this, version);
        }

        // A late callback of an earlier wait (this waiter reused meanwhile) cancels only a wait on the same token, which is cancelled.
        private void Cancelled(CancellationToken token) => slots.Cancel(this, token);

        /// <summary>Ends the wait: with a slot (<paramref name="error"/> null) or cancelled. Once per wait (the queue decides who).</summary>
        public void Complete(Exception? error)
        {
            // Not disposed: that would wait for a cancel callback running now, which finds this waiter out of the queue anyway.
            _cancellation.Unregister();
            if (error is null)
            {
                _core.SetResult(true);
            }
            else
            {
                _core.SetException(error);
            }
        }

        public ValueTaskSourceStatus GetStatus(short token) => _core.GetStatus(token);

        public void OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);

        public void GetResult(short token)
        {
            try
            {
                _core.GetResult(token);
            }
            finally
            {
                _core.Reset();
                _cancellation = default;
                slots.Return(this);
            }
        }
    }
}
