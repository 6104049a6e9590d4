using System.Threading.Channels;

namespace Bridge.Worker.Connections;

/// <summary>
/// A connection's send queue, bounded both in frames and in bytes, so a client that stops reading holds at most
/// that much memory. Enqueueing never waits: a full queue is the caller's signal that the client is too slow.
/// </summary>
internal sealed class OutboundQueue(int capacity, long maxBytes)
{
    private readonly Channel<byte[]> _channel = Channel.CreateBounded<byte[]>(new BoundedChannelOptions(capacity)
    {
        SingleReader = true,
        SingleWriter = false,
        FullMode = BoundedChannelFullMode.Wait,
    });

    private long _bytes;

    public ChannelReader<byte[]> Reader => _channel.Reader;

    public long QueuedBytes => Interlocked.Read(ref _bytes);

    public bool TryEnqueue(byte[] frame)
    {
        // The byte limit bounds the backlog: one frame larger than the limit (a big backend message) is still
        // accepted into an otherwise empty queue, so a fast reader is never closed for a single large message.
        var total = Interlocked.Add(ref _bytes, frame.Length);
        if (total > maxBytes && total != frame.Length)
        {
            Interlocked.Add(ref _bytes, -frame.Length);
            return false;
        }

        if (!_channel.Writer.TryWrite(frame))
        {
            Interlocked.Add(ref _bytes, -frame.Length);
            return false;
        }

        return true;
    }

    /// <summary>Called by the sender once a dequeued frame has been written.</summary>
    public void OnSent(byte[] frame) => Interlocked.Add(ref _bytes, -frame.Length);

    public void Complete() => _channel.Writer.TryComplete();
}
