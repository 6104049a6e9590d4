using System.Threading.Channels;

namespace Bridge.Client;

/// <summary>
/// One joined room's position and message buffer: the owner of the <c>seq</c> a resume asks for, of the buffer
/// <see cref="RoomSubscription.ReadAllAsync"/> reads, and of what the last <c>room.joined</c> said.
/// </summary>
internal sealed class RoomFeed
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _firstJoin = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Wait, not drop: a full buffer holds the connection's receive loop back, so the socket (and then the server)
    // waits for the application; no message is ever skipped silently and memory stays bounded.
    private readonly Channel<BridgeMessage> _buffer;

    // Guarded by _lock (a ulong? is not read atomically): the seq of the last message put in the buffer, or the
    // last room.joined position, whichever is greater; none until the first join of a room joined without `since`.
    private ulong _position;
    private bool _hasPosition;

    private volatile RoomJoinInfo? _lastJoin;

    public RoomFeed(ulong? since, int capacity)
    {
        _hasPosition = since.HasValue;
        _position = since.GetValueOrDefault();
        _buffer = Channel.CreateBounded<BridgeMessage>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleWriter = true,
        });
    }

    public ulong? Position
    {
        get
        {
            lock (_lock)
            {
                return _hasPosition ? _position : null;
            }
        }
    }

    public RoomJoinInfo? LastJoin => _lastJoin;

    /// <summary>
    /// Completes when <see cref="BridgeClient.JoinAsync"/> returns: on the first <c>room.joined</c>, or earlier when
    /// the buffer fills before it (a resume replaying more than the buffer holds: the replay comes before
    /// <c>room.joined</c>, and only the application reading it lets the rest come). Fails when the room ends first.
    /// </summary>
    public Task FirstJoin => _firstJoin.Task;

    public ChannelReader<BridgeMessage> Reader => _buffer.Reader;

    /// <summary>
    /// Puts a room message in the buffer unless its <paramref name="seq"/> is at or before the position (a
    /// duplicate, or older: dropped), waiting while the buffer is full. The position moves only once the message
    /// is in the buffer, so a connection lost meanwhile resumes from before it.
    /// </summary>
    public async ValueTask DeliverAsync(ulong seq, Func<BridgeMessage> message, CancellationToken cancellationToken)
    {
        if (!IsAfterPosition(seq))
        {
            return;
        }

        var item = message();
        if (!_buffer.Writer.TryWrite(item))
        {
            // Full: only the application can make room, so it must have the subscription now.
            _firstJoin.TrySetResult();
            try
            {
                await _buffer.Writer.WriteAsync(item, cancellationToken).ConfigureAwait(false);
            }
            catch (ChannelClosedException)
            {
                return; // left meanwhile
            }
        }

        Advance(seq);
    }

    /// <summary>A <c>room.joined</c>: moves the position to its <c>seq</c> (never back) and keeps what it said.</summary>
    public void OnJoined(RoomJoinInfo info)
    {
        if (info.Truncated)
        {
            // The worker could not honour the position (a since beyond the room's end, or messages lost to
            // retention): its seq is the room's position from now on, even when it is below ours, or every message
            // up to our old position would be dropped as already seen.
            Reset(info.Seq);
        }
        else
        {
            Advance(info.Seq);
        }

        _lastJoin = info;
    }

    /// <summary>Lets <see cref="BridgeClient.JoinAsync"/> return (after the first <c>room.joined</c> was taken in).</summary>
    public void CompleteFirstJoin() => _firstJoin.TrySetResult();

    /// <summary>
    /// The room ended: a join still waiting fails with <paramref name="joinError"/>; the buffer completes (the
    /// application still reads what it holds), normally or with <paramref name="readError"/>.
    /// </summary>
    public void End(BridgeException joinError, BridgeException? readError)
    {
        _firstJoin.TrySetException(joinError);
        _ = _firstJoin.Task.Exception; // observed: nobody may be waiting for it
        _buffer.Writer.TryComplete(readError);
    }

    private bool IsAfterPosition(ulong seq)
    {
        lock (_lock)
        {
            return !_hasPosition || seq > _position;
        }
    }

    private void Reset(ulong seq)
    {
        lock (_lock)
        {
            _position = seq;
            _hasPosition = true;
        }
    }

    private void Advance(ulong seq)
    {
        lock (_lock)
        {
            if (!_hasPosition || seq > _position)
            {
                _position = seq;
                _hasPosition = true;
            }
        }
    }
}
