namespace Bridge.Worker.Nats;

/// <summary>
/// A bounded buffer of items from writers to one reader that wakes a waiting reader once per batch, not per item: the
/// reader says how many items it waits for (<see cref="WaitAsync"/>), and a write wakes it only when that many are
/// buffered, when the write is urgent, or when the buffer is completed. A replay's profile put about a tenth of the
/// worker's CPU in thread hand-offs, one per delivery from NATS.Net's read loop to the history reader
/// (docs/benchmarks.md, "Replay, sixth pass (issue 14)"); <see cref="ConsumerPulls"/> waits for the deliveries its pulls
/// still have to bring (a batch at most), and its statuses and stall marks are urgent.
/// </summary>
/// <remarks>
/// A reader that waits for more than will ever come is woken only by an urgent write or completion: the waiter must
/// ask for no more than is certain to come, or else be certain of an urgent write. The reader takes what the writers
/// buffered all at once into a queue of its own (one lock per batch, not per item), so the writers seldom meet it at
/// the lock.
/// </remarks>
internal sealed class WakeBatchBuffer<T>(int capacity)
{
    private readonly Lock _gate = new();
    private Queue<T> _items = new();

    // The reader's: items taken from the writers' queue and not yet read, and how many (read by writers for the bound).
    private Queue<T> _taken = new();
    private int _takenCount;
    private TaskCompletionSource? _waiter;
    private int _wakeAt;
    private bool _completed;

    /// <summary>Items buffered (the reader's view).</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _items.Count + _taken.Count;
            }
        }
    }

    /// <summary>Why the buffer was completed: null while open or when completed without an error.</summary>
    public Exception? Error { get; private set; }

    /// <summary>Completed: no more items will be written (those buffered can still be read).</summary>
    public bool IsCompleted
    {
        get
        {
            lock (_gate)
            {
                return _completed;
            }
        }
    }

    /// <summary>
    /// Buffers <paramref name="item"/>; false when full or completed (nothing buffered). Wakes the waiting reader when the
    /// items it waits for are all here, or at once when <paramref name="urgent"/>.
    /// </summary>
    public bool TryWrite(T item, bool urgent)
    {
        TaskCompletionSource? wake = null;
        lock (_gate)
        {
            // The reader's count may be one high while it takes an item (never low): the bound is never overrun.
            if (_completed || _items.Count + Volatile.Read(ref _takenCount) >= capacity)
            {
                return false;
            }

            _items.Enqueue(item);
            if (_waiter is not null && (urgent || _items.Count >= _wakeAt))
            {
                wake = _waiter;
                _waiter = null;
            }
        }

        wake?.TrySetResult();
        return true;
    }

    /// <summary>The oldest item, taken; false when none is buffered. The reader's only.</summary>
    public bool TryRead(out T item)
    {
        if (_taken.Count == 0 && !TakeAll())
        {
            item = default!;
            return false;
        }

        item = _taken.Dequeue();
        Volatile.Write(ref _takenCount, _taken.Count);
        return true;
    }

    /// <summary>The oldest item, left in place; false when none is buffered. The reader's only.</summary>
    public bool TryPeek(out T item)
    {
        if (_taken.Count == 0 && !TakeAll())
        {
            item = default!;
            return false;
        }

        return _taken.TryPeek(out item!);
    }

    // Swaps the writers' queue for the reader's empty one: everything buffered is the reader's, in order.
    private bool TakeAll()
    {
        lock (_gate)
        {
            if (_items.Count == 0)
            {
                return false;
            }

            (_items, _taken) = (_taken, _items);
            Volatile.Write(ref _takenCount, _taken.Count);
            return true;
        }
    }

    /// <summary>
    /// Waits until <paramref name="items"/> items are buffered (at least 1), an urgent item is written, or the buffer is
    /// completed; at once when anything is buffered already. One reader waits at a time.
    /// </summary>
    public Task WaitAsync(int items, CancellationToken cancellationToken)
    {
        TaskCompletionSource waiter;
        lock (_gate)
        {
            if (_completed || _items.Count > 0 || _taken.Count > 0)
            {
                return Task.CompletedTask;
            }

            _wakeAt = Math.Max(1, items);
            // Woken from a writer's thread (NATS.Net's read loop): the reader goes on elsewhere.
            waiter = _waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }

        return waiter.Task.WaitAsync(cancellationToken);
    }

    /// <summary>No more items: wakes the reader; <paramref name="error"/> (if any) is what it will find in <see cref="Error"/>.</summary>
    public void Complete(Exception? error = null)
    {
        TaskCompletionSource? wake;
        lock (_gate)
        {
            if (_completed)
            {
                return;
            }

            _completed = true;
            Error = error;
            wake = _waiter;
            _waiter = null;
        }

        wake?.TrySetResult();
    }
}
