using System.Buffers;
using System.Text.Json;
using System.Threading.Channels;

namespace Bridge.Client;

/// <summary>
/// One joined room's (or room pattern's) position and message buffer: the owner of the <c>seq</c> a resume asks for,
/// of the arguments each join sends, of the buffer <see cref="RoomSubscription.ReadAllAsync"/> reads, and of what the
/// last <c>room.joined</c> said.
/// </summary>
/// <remarks>
/// A pattern's position is a stream <c>seq</c> like a room's: the worker sends the messages of all its rooms in stream
/// order, so the same de-duplication holds. Two kinds of message are taken without moving the position or being
/// de-duplicated: the latest values a join with <c>latest</c> gets before its <c>room.joined</c> (one per room, in no
/// seq order), and every message of a conflated join (each room at its own rate, so not in seq order). A conflated join
/// keeps a position of its own to rejoin from (<see cref="WriteJoinArguments"/>), never used to drop a message.
/// </remarks>
internal sealed class RoomFeed
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _firstJoin = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly RoomJoinOptions _options;

    // Wait, not drop: a full buffer holds the connection's receive loop back, so the socket (and then the server)
    // waits for the application; no message is ever skipped silently and memory stays bounded.
    private readonly Channel<BridgeMessage> _buffer;

    // Guarded by _lock (a ulong? is not read atomically): the seq of the last message put in the buffer, or the
    // last room.joined position, whichever is greater; none until the first join of a room joined without `since`,
    // and never for a conflated join.
    private ulong _position;
    private bool _hasPosition;

    // Guarded by _lock: a conflated join's rejoin position (docs/protocol.md §4, conflation: below it every message was
    // sent or replaced by a newer one that was sent): the last room.joined seq, and for a room (not a pattern) each later
    // message's seq, its values coming in seq order. A pattern's rooms go at their own pace, so another room's older
    // value may still have been owed when one arrived: only room.joined's seq holds for all of them.
    private ulong _conflatedSince;
    private bool _hasConflatedSince;
    private readonly bool _pattern;

    private volatile RoomJoinInfo? _lastJoin;

    public RoomFeed(RoomJoinOptions options, int capacity, bool pattern)
    {
        _options = options;
        _pattern = pattern;
        _hasPosition = options.Since.HasValue && !options.IsConflated;
        _position = options.Since.GetValueOrDefault();
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
    /// Completes when <see cref="BridgeClient.JoinAsync(string, RoomJoinOptions, CancellationToken)"/> returns: on the first <c>room.joined</c>, or earlier when
    /// the buffer fills before it (a resume replaying more than the buffer holds: the replay comes before
    /// <c>room.joined</c>, and only the application reading it lets the rest come). Fails when the room ends first.
    /// </summary>
    public Task FirstJoin => _firstJoin.Task;

    /// <summary>
    /// The room is held: <see cref="BridgeClient.JoinAsync(string, RoomJoinOptions, CancellationToken)"/> returned
    /// (<see cref="FirstJoin"/> completed), so a retryable refusal of a rejoin never ends it.
    /// </summary>
    public bool IsHeld => _firstJoin.Task.IsCompletedSuccessfully;

    public ChannelReader<BridgeMessage> Reader => _buffer.Reader;

    /// <summary>
    /// Puts a room message in the buffer unless its <paramref name="seq"/> is at or before the position (a
    /// duplicate, or older: dropped), waiting while the buffer is full. The position moves only once the message
    /// is in the buffer, so a connection lost meanwhile resumes from before it.
    /// </summary>
    public async ValueTask DeliverAsync(ulong seq, Func<BridgeMessage> message, CancellationToken cancellationToken)
    {
        var positionless = IsPositionless();
        if (!positionless && !IsAfterPosition(seq))
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

        if (!positionless)
        {
            Advance(seq);
        }
        else if (_options.IsConflated && !_pattern && _lastJoin is not null)
        {
            AdvanceConflated(seq);
        }
    }

    /// <summary>
    /// The <c>room.join</c> payload for the next join (UTF-8 JSON), or null for a plain live join: the object
    /// <see cref="WriteJoinArguments"/> writes.
    /// </summary>
    public byte[]? JoinPayload()
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            WriteJoinArguments(writer);
            writer.WriteEndObject();
        }

        // "{}": nothing to ask for.
        return buffer.WrittenCount == 2 ? null : buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// Writes the next join's arguments as properties of the object <paramref name="writer"/> is in (a single join's
    /// payload, or a batch join's entry beside its <c>room</c>; docs/protocol.md §4): a conflated join asks for its rate,
    /// the first time with <c>latest</c> if the application asked, and on a re-join with <c>since</c> = its conflated
    /// position (the worker sends each room's newest message after it: the values the application has do not come
    /// again; never with <c>latest</c> too, which would send every room's); any other join resumes from the position
    /// when it has one, else asks for <c>latest</c> if the application did. Nothing for a plain live join.
    /// </summary>
    public void WriteJoinArguments(Utf8JsonWriter writer)
    {
        if (_options.MaxRate is { } rate)
        {
            if (ConflatedSince is { } since)
            {
                writer.WriteNumber("since", since);
            }
            else if (_options.Latest)
            {
                writer.WriteBoolean("latest", true);
            }

            writer.WriteNumber("maxRate", rate);
        }
        else if (Position is { } since)
        {
            writer.WriteNumber("since", since);
        }
        else if (_options.Latest)
        {
            writer.WriteBoolean("latest", true);
        }
    }

    /// <summary>A <c>room.joined</c>: moves the position to its <c>seq</c> (never back) and keeps what it said.</summary>
    public void OnJoined(RoomJoinInfo info)
    {
        if (_options.IsConflated)
        {
            // No position (its messages are not in seq order), but a place to rejoin from.
            AdvanceConflated(info.Seq);
        }
        else if (info.Truncated)
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

    /// <summary>Lets <see cref="BridgeClient.JoinAsync(string, RoomJoinOptions, CancellationToken)"/> return (after the first <c>room.joined</c> was taken in).</summary>
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

    /// <summary>A conflated join, or the latest values before a <c>latest</c> join's first <c>room.joined</c> (no position yet).</summary>
    private bool IsPositionless() => _options.IsConflated || (_options.Latest && _lastJoin is null && Position is null);

    private bool IsAfterPosition(ulong seq)
    {
        lock (_lock)
        {
            return !_hasPosition || seq > _position;
        }
    }

    /// <summary>A conflated join's rejoin position (see <see cref="_conflatedSince"/>); null before its first <c>room.joined</c>.</summary>
    private ulong? ConflatedSince
    {
        get
        {
            lock (_lock)
            {
                return _hasConflatedSince ? _conflatedSince : null;
            }
        }
    }

    private void AdvanceConflated(ulong seq)
    {
        lock (_lock)
        {
            if (!_hasConflatedSince || seq > _conflatedSince)
            {
                _conflatedSince = seq;
                _hasConflatedSince = true;
            }
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
