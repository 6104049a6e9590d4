using System.Threading.Channels;

namespace Bridge.Worker.Connections;

/// <summary>
/// A connection's send queue, bounded both in frames and in bytes, so a client that stops reading holds at most
/// that much memory. Enqueueing never waits.
/// </summary>
/// <remarks>
/// <para>
/// Room messages may fill it up to its bounds (frames, and bytes plus one frame): a room member whose message does
/// not fit falls behind and reads the room from the stream when there is room again (see
/// <see cref="RoomMembership"/>). Beyond that, a reserve of a quarter more is kept for control frames (acks,
/// errors, <c>room.joined</c>, heartbeats), so answers still go out while room messages are paused; only a client
/// that keeps asking while it does not read overflows it (the caller closes it with 4008). The queue also counts
/// the frames written, for the stall check.
/// </para>
/// <para>
/// Conflated members (<c>maxRate</c>) fill it only up to a much lower mark (<see cref="TryEnqueueConflated"/>): what
/// they queue is a value that ages while it waits, so they hand over the next one only as the connection takes what
/// is queued, and are told when it has (<see cref="WhenDrained"/>).
/// </para>
/// </remarks>
internal sealed class OutboundQueue
{
    private readonly FrameBuffer _frames = new();
    private readonly Lock _gate = new();
    private readonly int _capacity;
    private readonly long _maxBytes;
    private readonly int _messageFrames;
    private readonly long _messageBytes;
    private readonly int _lowWater;
    private readonly long _headroomBytes;
    private readonly int _conflatedFrames;
    private readonly long _conflatedBytes;
    private TaskCompletionSource? _headroom;
    private List<Action>? _drained;
    private int _drainWanted;
    private long _bytes;
    private int _count;
    private long _written;
    private int _flushing;
    private volatile bool _completed;

    // The stall check's own state: touched only by the one sweeper thread.
    private long _checkedWritten;
    private long _progressAt;

    /// <param name="capacity">Frames of room messages it holds; control frames may take a quarter more.</param>
    /// <param name="maxBytes">Bytes of room messages it holds (plus one frame); control frames may take a quarter more.</param>
    /// <param name="conflatedFrames">Frames queued below which a conflated member may add one (at most <paramref name="capacity"/>).</param>
    /// <param name="conflatedBytes">Bytes queued below which a conflated member may add a frame (at most <paramref name="maxBytes"/>).</param>
    public OutboundQueue(int capacity, long maxBytes, int conflatedFrames = ConnectionOptions.DefaultConflatedQueueFrames, long conflatedBytes = ConnectionOptions.DefaultConflatedQueueBytes)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxBytes, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(conflatedFrames, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(conflatedBytes, 1);
        _conflatedFrames = Math.Min(conflatedFrames, capacity);
        _conflatedBytes = Math.Min(conflatedBytes, maxBytes);
        _messageFrames = capacity;
        _messageBytes = maxBytes;
        _capacity = capacity + Math.Max(1, capacity / 4);
        _maxBytes = maxBytes + maxBytes / 4;
        _lowWater = Math.Max(1, capacity / 2);
        _headroomBytes = maxBytes / 2;
    }

    public ChannelReader<OutboundFrame> Reader => _frames;

    /// <summary>Bytes queued or being written.</summary>
    public long QueuedBytes => Interlocked.Read(ref _bytes);

    /// <summary>Frames queued or being written.</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Room messages that fit now: what a member catching up may read at once.</summary>
    public (int Frames, long Bytes) RoomForMessages =>
        (Math.Max(0, _messageFrames - Count), Math.Max(0, _messageBytes - QueuedBytes));

    /// <summary>Queues a control frame, into the reserve if room messages filled the rest; false when even that is full (the caller closes the connection).</summary>
    public bool TryEnqueue(OutboundFrame item) => TryAdd(item, _capacity, _maxBytes);

    /// <summary>
    /// Queues a room message if the queue is below its bounds for room messages; false otherwise (the member falls
    /// behind and reads it from the stream later).
    /// </summary>
    public bool TryEnqueueMessage(OutboundFrame item) => TryAdd(item, _messageFrames, _messageBytes);

    /// <summary>
    /// Queues room messages in order, each as <see cref="TryEnqueueMessage"/> would (the same bounds), in one step: the
    /// frames that fit go in together, with one lock and at most one wake-up of the sender (a read of history, not a
    /// live message). Returns how many of the first <paramref name="items"/> were queued; the rest did not fit (or the
    /// queue is completed).
    /// </summary>
    public int TryEnqueueMessages(ReadOnlySpan<OutboundFrame> items)
    {
        var fits = 0;
        long bytes = 0;
        foreach (ref readonly var item in items)
        {
            if (!TryReserve(item.Bytes.Length, _messageFrames, _messageBytes))
            {
                break;
            }

            fits++;
            bytes += item.Bytes.Length;
        }

        if (fits > 0 && !_frames.TryWriteMany(items[..fits]))
        {
            Interlocked.Add(ref _bytes, -bytes);
            Interlocked.Add(ref _count, -fits);
            return 0;
        }

        return fits;
    }

    /// <summary>
    /// Queues a conflated member's message only while the queue is below its conflation mark (frames and bytes); false
    /// otherwise: the member keeps the value pending (replaced by newer ones) and asks <see cref="WhenDrained"/>.
    /// </summary>
    public bool TryEnqueueConflated(OutboundFrame item) => HasRoomForConflated && TryEnqueueMessage(item);

    private bool HasRoomForConflated => Count < _conflatedFrames && QueuedBytes < _conflatedBytes;

    // Drained for conflated members: at half their mark, not one frame below it, so a member woken refills half the mark
    // in one go (one callback, one flush, one refusal per half mark of values, not per value: issue 16 §3).
    private bool IsDrainedForConflated => Count <= _conflatedFrames / 2 && QueuedBytes <= _conflatedBytes / 2;

    /// <summary>
    /// Calls <paramref name="drained"/> once, as soon as the queue is down to half its conflation mark (from the sender, as
    /// it takes frames; at once on the thread pool when it already is), or never once the queue is completed. The callback
    /// must not throw.
    /// </summary>
    public void WhenDrained(Action drained)
    {
        lock (_gate)
        {
            if (_completed)
            {
                return;
            }

            (_drained ??= []).Add(drained);
            Volatile.Write(ref _drainWanted, 1);
        }

        // The sender may have taken the frames before the callback was registered; the caller holds its own lock, so
        // the callback cannot run on this thread.
        if (IsDrainedForConflated)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static queue => queue.SignalDrained(), this, preferLocal: false);
        }
    }

    private void SignalDrained()
    {
        List<Action>? callbacks;
        lock (_gate)
        {
            callbacks = _drained;
            _drained = null;
            Volatile.Write(ref _drainWanted, 0);
        }

        if (callbacks is null || _completed)
        {
            return;
        }

        foreach (var callback in callbacks)
        {
            callback();
        }
    }

    private bool TryAdd(OutboundFrame item, int maxFrames, long maxBytes)
    {
        if (!TryReserve(item.Bytes.Length, maxFrames, maxBytes))
        {
            return false;
        }

        if (!_frames.TryWrite(item))
        {
            Interlocked.Add(ref _bytes, -item.Bytes.Length);
            Interlocked.Decrement(ref _count);
            return false;
        }

        return true;
    }

    // Counts a frame of length bytes in if it fits the bounds; false (nothing counted) otherwise.
    private bool TryReserve(int length, int maxFrames, long maxBytes)
    {
        if (Interlocked.Increment(ref _count) > maxFrames)
        {
            Interlocked.Decrement(ref _count);
            return false;
        }

        // The byte bound applies to what is queued before the frame: a frame larger than the room left (a big backend
        // message) still goes in, so a reader is never stuck on one large message and the queue holds at most its
        // bound plus one frame.
        var total = Interlocked.Add(ref _bytes, length);
        if (total - length >= maxBytes)
        {
            Interlocked.Add(ref _bytes, -length);
            Interlocked.Decrement(ref _count);
            return false;
        }

        return true;
    }

    /// <summary>Called by the sender once a dequeued frame has been written.</summary>
    public void OnSent(in OutboundFrame frame)
    {
        Interlocked.Add(ref _bytes, -frame.Bytes.Length);
        Interlocked.Decrement(ref _count);
        // One sender per queue: a plain increment, published for the stall check.
        Volatile.Write(ref _written, _written + 1);
        if (Volatile.Read(ref _headroom) is not null && HasHeadroom)
        {
            ReleaseWaiter();
        }

        if (Volatile.Read(ref _drainWanted) != 0 && IsDrainedForConflated)
        {
            SignalDrained();
        }
    }

    /// <summary>
    /// Called by the sender before a socket write of frames already counted as sent (a batch's flush): while that
    /// write waits on the socket the connection still has output waiting, so the stall check must not see it as idle.
    /// </summary>
    public void OnFlushStarted() => Volatile.Write(ref _flushing, 1);

    /// <summary>Called by the sender once the flush <see cref="OnFlushStarted"/> announced is written: progress.</summary>
    public void OnFlushEnded()
    {
        Volatile.Write(ref _flushing, 0);
        Volatile.Write(ref _written, _written + 1);
    }

    private bool HasHeadroom => Count < _lowWater && QueuedBytes < _headroomBytes;

    /// <summary>
    /// Waits until the queue is at most half full. Bulk senders (replay, catch-up, sync) wait here before each batch
    /// so history never crowds out live traffic or control frames.
    /// </summary>
    public ValueTask WaitForHeadroomAsync(CancellationToken cancellationToken)
    {
        if (HasHeadroom)
        {
            return ValueTask.CompletedTask;
        }

        Task wait;
        lock (_gate)
        {
            _headroom ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            wait = _headroom.Task;
        }

        // Re-check: the sender may have drained the queue before the waiter was registered.
        if (HasHeadroom || _completed)
        {
            ReleaseWaiter();
        }

        return new ValueTask(wait.WaitAsync(cancellationToken));
    }

    /// <summary>
    /// Waits (as <see cref="WaitForHeadroomAsync"/>) only when a room message would not fit now: for answers sent in
    /// bulk (a batch join's <c>room.joined</c>), which may otherwise overflow only the reserve of a queue that is not read.
    /// Completes at once while room messages fit.
    /// </summary>
    public ValueTask WaitForMessageRoomAsync(CancellationToken cancellationToken)
    {
        var (frames, bytes) = RoomForMessages;
        return frames == 0 || bytes == 0 ? WaitForHeadroomAsync(cancellationToken) : ValueTask.CompletedTask;
    }

    private void ReleaseWaiter()
    {
        lock (_gate)
        {
            _headroom?.TrySetResult();
            _headroom = null;
        }
    }

    /// <summary>
    /// The stall check, called by one sweeper at intervals with its clock's timestamp: true when frames have been
    /// waiting (queued, or written into a batch whose flush is blocked) and none was written for at least
    /// <paramref name="timeout"/>.
    /// </summary>
    public bool IsStalled(long now, TimeSpan timeout, TimeProvider time)
    {
        var written = Volatile.Read(ref _written);
        if ((Count == 0 && Volatile.Read(ref _flushing) == 0) || written != _checkedWritten || _progressAt == 0)
        {
            _checkedWritten = written;
            _progressAt = now;
            return false;
        }

        return time.GetElapsedTime(_progressAt, now) >= timeout;
    }

    public void Complete()
    {
        _completed = true;
        _frames.Complete();
        ReleaseWaiter();
        lock (_gate)
        {
            _drained = null;
        }
    }
}
