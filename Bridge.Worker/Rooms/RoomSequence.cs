namespace Bridge.Worker.Rooms;

/// <summary>
/// The one owner of a room's sequencing on this worker: its live position (the seq up to which the room's messages
/// have been dispatched), the gate that orders everything that dispatches (the live feed, gap fills, the catch-up
/// after a NATS reconnect), and the seam at which a member moves from reading the stream to the live dispatch. The
/// NATS side only hands it stamped messages and asks it to catch up; members only ask it for a seam.
/// </summary>
/// <remarks>
/// <para>
/// Gaps. A room's messages carry <c>Nats-Last-Sequence</c>, its previous message: one beyond the position means a
/// message was missed, and it is read from the stream before this one. A pattern's feed carries many rooms, and
/// <c>Nats-Last-Sequence</c> is per room: a message of room <c>a</c> says nothing of a lost message of room <c>b</c>.
/// Its position is still one stream seq (the last message of any of its rooms dispatched), and it misses nothing
/// because a message can only be lost on the worker's side of the subscription, where the worker sees it happen:
/// </para>
/// <list type="bullet">
/// <item>the subscription's buffer overflowing (NATS.Net drops the newest). NATS.Net tells which message it dropped,
/// but through its event queue, often after later messages were dispatched: so the pump marks the pattern
/// (<see cref="MarkOverflowed"/>) whenever it finds the buffer full, which it always does after a drop (only its reads
/// empty the buffer), and the next message first has the pattern read from the stream (a wildcard filter) up to its last
/// stored seq; the buffered messages that read covered are skipped. A drop reported in time (<see cref="MarkDropped"/>)
/// is filled up to the next message alone; if no message comes, either is filled once the buffer is drained
/// (<see cref="FillDroppedAsync"/>);</item>
/// <item>the NATS connection dropping (a server that closes a slow consumer drops it too): <see cref="MarkStale"/>,
/// and until a catch-up has compared the position with the pattern's last stored seq after the reconnect, every
/// live message first tries that catch-up (the subscription is back before the request, as for a room);</item>
/// <item>a message of one of its rooms after a position the room's own <c>Nats-Last-Sequence</c> says it has not
/// seen: the same fill as a room's.</item>
/// </list>
/// <para>
/// What the server never sends at all is not seen until that room's next message: a pattern does not order it.
/// Each fill reads the stream in order, so the dispatch stays in stream order.
/// </para>
/// </remarks>
internal sealed partial class RoomSequence(Room room, RoomServices services)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ulong _position;

    // Patterns only: the highest seq the subscription dropped, and the connection drops seen / caught up after.
    private ulong _dropped;
    private ulong _droppedFilled;
    private int _disconnects;
    private int _caughtUpAfter;
    private int _overflows;
    private int _overflowsCaughtUp;

    /// <summary>
    /// The live position: every message of the room up to it has been dispatched, and is in the stream. Read
    /// without the gate by members catching up (as a target to read towards, never as a seam).
    /// </summary>
    public ulong Position => Volatile.Read(ref _position);

    /// <summary>
    /// Called by the feed once its subscription is in place: everything stored up to now is history, everything
    /// after comes live.
    /// </summary>
    public async ValueTask StartAsync(CancellationToken cancellationToken) =>
        Volatile.Write(ref _position, await services.Log.GetLastSeqAsync(room.Name, cancellationToken));

    /// <summary>
    /// One message from the live feed, in stream order. A message already dispatched (by a gap fill) is skipped;
    /// one whose predecessor was never seen first has the gap filled from the stream.
    /// </summary>
    public async ValueTask OnLiveAsync(RoomMessage message)
    {
        await _gate.WaitAsync();
        try
        {
            if (message.Seq <= _position)
            {
                return;
            }

            if (room.Pattern is not null)
            {
                await CheckPatternAsync(message.Seq);
            }

            if (message.PreviousSeq > _position)
            {
                LogGap(services.Logger, room.Name, _position, message.PreviousSeq);
                services.Metrics.GapFilled();
                await FillAsync(message.PreviousSeq, CancellationToken.None);
            }

            // A pattern's catch-up may have read up to this message already.
            if (message.Seq > _position)
            {
                DispatchAt(message);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Dispatches whatever the room stored that the live feed has not (after a NATS reconnect).</summary>
    public async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            await CatchUpToLastAsync(cancellationToken);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>A pattern's subscription dropped message <paramref name="seq"/> (its buffer was full): the next message after it is preceded by a fill.</summary>
    public void MarkDropped(ulong seq)
    {
        var seen = Volatile.Read(ref _dropped);
        while (seq > seen)
        {
            var was = Interlocked.CompareExchange(ref _dropped, seq, seen);
            if (was == seen)
            {
                return;
            }

            seen = was;
        }
    }

    /// <summary>
    /// A pattern's buffer is drained: what it dropped that no later message filled (the tail of a burst) is read from the
    /// stream now.
    /// </summary>
    public async Task FillDroppedAsync()
    {
        if (Volatile.Read(ref _dropped) <= Math.Max(Volatile.Read(ref _position), Volatile.Read(ref _droppedFilled)) &&
            Volatile.Read(ref _overflows) == Volatile.Read(ref _overflowsCaughtUp))
        {
            return;
        }

        await _gate.WaitAsync();
        try
        {
            if (Volatile.Read(ref _overflows) != _overflowsCaughtUp)
            {
                services.Metrics.GapFilled();
                await CatchUpToLastAsync(CancellationToken.None);
                return;
            }

            var dropped = Volatile.Read(ref _dropped);
            if (dropped > _position && dropped > _droppedFilled)
            {
                LogDropped(services.Logger, room.Name, _position, dropped);
                services.Metrics.GapFilled();
                await FillAsync(dropped, CancellationToken.None);
                // Read once: a dropped message the stream no longer returns (retention, or no room name) is not read again.
                _droppedFilled = dropped;
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>The NATS connection dropped: a pattern checks the stream before its next dispatch, until a catch-up after the reconnect.</summary>
    public void MarkStale() => Interlocked.Increment(ref _disconnects);

    /// <summary>
    /// A pattern's subscription buffer was found full, so it may have dropped messages: the next dispatch (or the buffer
    /// draining) first reads the pattern from the stream up to its last stored seq.
    /// </summary>
    public void MarkOverflowed() => Interlocked.Increment(ref _overflows);

    /// <summary>Called under the gate: compares the position with the last stored seq and fills up to it.</summary>
    private async Task CatchUpToLastAsync(CancellationToken cancellationToken)
    {
        // A drop or an overflow seen after this point needs a catch-up of its own: only the counts read first are cleared.
        var disconnects = Volatile.Read(ref _disconnects);
        var overflows = Volatile.Read(ref _overflows);
        var last = await services.Log.GetLastSeqAsync(room.Name, cancellationToken);
        if (last > _position)
        {
            LogCatchUp(services.Logger, room.Name, _position, last);
            await FillAsync(last, cancellationToken);
        }

        _caughtUpAfter = disconnects;
        _overflowsCaughtUp = overflows;
    }

    /// <summary>
    /// Called under the gate for a pattern's live message <paramref name="seq"/>: fills what the subscription dropped
    /// before it, or everything stored since a connection drop. A failure throws: the message is not dispatched, and the
    /// next one (or the reconnect's catch-up) reads it from the stream.
    /// </summary>
    private async Task CheckPatternAsync(ulong seq)
    {
        if (Volatile.Read(ref _disconnects) != _caughtUpAfter || Volatile.Read(ref _overflows) != _overflowsCaughtUp)
        {
            if (Volatile.Read(ref _overflows) != _overflowsCaughtUp)
            {
                services.Metrics.GapFilled();
            }

            await CatchUpToLastAsync(CancellationToken.None);
            return;
        }

        var dropped = Volatile.Read(ref _dropped);
        if (dropped > _position && dropped < seq)
        {
            LogDropped(services.Logger, room.Name, _position, dropped);
            services.Metrics.GapFilled();
            await FillAsync(seq - 1, CancellationToken.None);
            _droppedFilled = Math.Max(_droppedFilled, dropped);
        }
    }

    /// <summary>
    /// The seam: <paramref name="member"/> starts holding live messages, and the position returned is the last one
    /// dispatched before that. Taken under the gate, so every message up to it is in the stream and every message
    /// after it reaches the member's hold: reading the stream up to the seam and then the hold misses nothing.
    /// </summary>
    public async ValueTask<ulong> SeamAsync(IRoomMember member, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            member.Hold();
            return _position;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Dispatches the room's stored messages after the position up to <paramref name="upTo"/>. Called under the gate.</summary>
    private async Task FillAsync(ulong upTo, CancellationToken cancellationToken)
    {
        await foreach (var stored in services.Log.ReadAsync(room.Name, _position, upTo, cancellationToken))
        {
            if (stored.Seq > _position)
            {
                DispatchAt(stored);
            }
        }
    }

    /// <summary>
    /// Moves the position to <paramref name="message"/> and fans it out. Members that failed it were closed (their
    /// clients resume); the others have it, so the position moves on and a gap fill goes on with the next message.
    /// </summary>
    private void DispatchAt(RoomMessage message)
    {
        Volatile.Write(ref _position, message.Seq);
        try
        {
            room.Dispatch(message);
        }
        catch (AggregateException ex)
        {
            LogDispatchFailed(services.Logger, ex, room.Name, message.Seq);
        }
    }

    [LoggerMessage(EventId = 1203, Level = LogLevel.Information, Message = "Gap in room {Room}: delivered up to {LastSeq}, next follows {PreviousSeq}; filling from the stream")]
    private static partial void LogGap(ILogger logger, string room, ulong lastSeq, ulong previousSeq);

    [LoggerMessage(EventId = 1209, Level = LogLevel.Information, Message = "Pattern {Room} dropped message {Dropped} from its live buffer (delivered up to {LastSeq}); filling from the stream")]
    private static partial void LogDropped(ILogger logger, string room, ulong lastSeq, ulong dropped);

    [LoggerMessage(EventId = 1208, Level = LogLevel.Error, Message = "Delivering message {Seq} of room {Room} failed for some members")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception, string room, ulong seq);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Information, Message = "Catching up room {Room} from {LastSeq} to {StoredSeq}")]
    private static partial void LogCatchUp(ILogger logger, string room, ulong lastSeq, ulong storedSeq);
}
