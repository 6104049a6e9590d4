using System.Threading.Channels;

namespace Bridge.Worker.Connections;

/// <summary>
/// A connection's send queue, bounded both in frames and in bytes, so a client that stops reading holds at most
/// that much memory. Enqueueing never waits: a full queue is the caller's signal that the client is too slow.
/// </summary>
internal sealed class OutboundQueue(int capacity, long maxBytes)
{
    private readonly Channel<OutboundFrame> _channel = Channel.CreateBounded<OutboundFrame>(new BoundedChannelOptions(capacity)
    {
        SingleReader = true,
        SingleWriter = false,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private readonly Lock _gate = new();
    private readonly int _lowWater = Math.Max(1, capacity / 2);
    private TaskCompletionSource? _headroom;
    private long _bytes;
    private volatile bool _completed;

    public ChannelReader<OutboundFrame> Reader => _channel.Reader;

    public long QueuedBytes => Interlocked.Read(ref _bytes);

    public bool TryEnqueue(OutboundFrame item)
    {
        var frame = item.Bytes;
        // The byte limit bounds the backlog: one frame larger than the limit (a big backend message) is still
        // accepted into an otherwise empty queue, so a fast reader is never closed for a single large message.
        var total = Interlocked.Add(ref _bytes, frame.Length);
        if (total > maxBytes && total != frame.Length)
        {
            Interlocked.Add(ref _bytes, -frame.Length);
            return false;
        }

        if (!_channel.Writer.TryWrite(item))
        {
            Interlocked.Add(ref _bytes, -frame.Length);
            return false;
        }

        return true;
    }

    /// <summary>Called by the sender once a dequeued frame has been written.</summary>
    public void OnSent(in OutboundFrame frame)
    {
        Interlocked.Add(ref _bytes, -frame.Bytes.Length);
        if (Volatile.Read(ref _headroom) is not null && HasHeadroom)
        {
            ReleaseWaiter();
        }
    }

    private bool HasHeadroom => _channel.Reader.Count < _lowWater && QueuedBytes < maxBytes / 2;

    /// <summary>
    /// Waits until the queue is at most half full. Bulk senders (replay, sync) call this before each frame so
    /// history never crowds out live traffic into a slow-consumer close.
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

    private void ReleaseWaiter()
    {
        lock (_gate)
        {
            _headroom?.TrySetResult();
            _headroom = null;
        }
    }

    public void Complete()
    {
        _completed = true;
        _channel.Writer.TryComplete();
        ReleaseWaiter();
    }
}
