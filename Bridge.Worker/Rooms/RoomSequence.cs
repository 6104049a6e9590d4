namespace Bridge.Worker.Rooms;

/// <summary>
/// The one owner of a room's sequencing on this worker: its live position (the seq up to which the room's messages
/// have been dispatched), the order of everything that dispatches (the live feed, gap fills, the catch-up after a NATS
/// reconnect), and the seam at which a member moves from reading the stream to the live dispatch. The NATS side only
/// hands it stamped messages, one at a time and in the order the server sent them, and asks it to catch up; members
/// only ask it for a seam. It is <see cref="Room"/>'s base class: its state stays private to it, and an active room is
/// one object (a separate sequence with its references back to the room cost 88 B per active room).
/// </summary>
/// <remarks>
/// <para>
/// The live path is synchronous: a message that follows the position is dispatched at once, on the caller's thread
/// (NATS.Net's read loop, <c>Nats/RoomFeed</c>), with no buffer or task per room. Anything that reads the stream (a gap
/// fill, a catch-up) runs as a drain off that thread; while it runs, live messages wait in a backlog bounded by
/// <see cref="RoomServices.BacklogCapacity"/>, allocated only then. One that finds the backlog full is left out, and the
/// drain catches the room up to its last stored seq (it is stored, as every live message is).
/// </para>
/// <para>
/// Gaps. A room's messages carry <c>Nats-Last-Sequence</c>, its previous message: one beyond the position means a
/// message was missed, and it is read from the stream before this one. A pattern's feed carries many rooms, and
/// <c>Nats-Last-Sequence</c> is per room: a message of room <c>a</c> says nothing of a lost message of room <c>b</c>.
/// Its position is still one stream seq (the last message of any of its rooms dispatched), and it misses nothing
/// because a message can only be lost on the worker's side of the subscription, where the worker sees it happen:
/// </para>
/// <list type="bullet">
/// <item>the backlog overflowing while a fill runs: the drain catches up to the last stored seq, as above;</item>
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
/// <para>
/// Retention. A fill (or catch-up) finds out as a member's catch-up does (<see cref="RetentionGap"/>) whether retention
/// dropped messages after the position before it read them; the first message dispatched after that hole goes to members
/// as <see cref="IRoomMember.DeliverAfterGap"/>, so every member that was live (or holding at its seam) across the hole
/// is sent <c>room.joined</c> <c>truncated</c> right after it, as a resume would be (docs/protocol.md §5). A position of 0
/// (the room had no message when its feed started, and none was dispatched since) cannot be checked: nothing is known
/// to be stored before the fill's first message.
/// </para>
/// </remarks>
internal abstract partial class RoomSequence
{
    private ulong _position;

    // Only while the room is busy (its position not known yet, until Start, or a drain owns the dispatch: live
    // messages then wait in its backlog) or owes a retention notice: null on a quiet room (most of them when a worker
    // holds many: 24 B less per active room than its fields inline). Under the gate.
    private DrainState? _drain = new() { Busy = true };

    // Patterns only (null for a room: 8 B less per active room than the pattern and its two counts inline).
    private readonly PatternState? _pattern;

    /// <param name="pattern">The pattern, when this is a pattern's feed; null for one room.</param>
    protected RoomSequence(Security.RoomPattern? pattern) => _pattern = pattern is null ? null : new PatternState(pattern);

    /// <summary>The room's name, or the pattern's text: the subject its stream reads are for.</summary>
    public abstract string Name { get; }

    /// <summary>The pattern, when this is a pattern's feed; null for one room.</summary>
    public Security.RoomPattern? Pattern => _pattern?.Pattern;

    /// <summary>
    /// The room's lock, and its sequence's: a dispatch the sequence orders reads the members under it anyway. The room's
    /// own monitor (a thin lock in its object header, no lock object per room: 40 B less per active room); nothing
    /// else locks a room.
    /// </summary>
    internal object Gate => this;

    /// <summary>What the room and its sequence use of the worker's (log, metrics, logger, registry).</summary>
    internal abstract RoomServices Services { get; }

    /// <summary>Under the gate: fans one message out to the room's members (<see cref="Room.Dispatch"/>).</summary>
    public abstract void Dispatch(RoomMessage message, bool afterGap = false);

    /// <summary>Under the gate, at a conflated member's seam (<see cref="Room.StartConflating"/>).</summary>
    internal abstract void StartConflating(IRoomMember member);

    /// <summary>
    /// The live position: every message of the room up to it has been dispatched, and is in the stream. Read
    /// without the gate by members catching up (as a target to read towards, never as a seam).
    /// </summary>
    public ulong Position => Volatile.Read(ref _position);

    /// <summary>
    /// Called by the feed with the room's <paramref name="last"/> stored seq, asked for once its subscription was in place
    /// (<see cref="IRoomLog.GetLastSeqAsync"/>): everything stored up to it is history, everything after comes live (what
    /// came live meanwhile waited in the backlog; what of it is history is skipped). Not an async method of its own: the
    /// feed's open awaits the ask (one state machine less per room activated).
    /// </summary>
    public void Start(ulong last)
    {
        lock (Gate)
        {
            Volatile.Write(ref _position, last);
            if (_drain is not { } drain || (drain.Backlog is not { Count: > 0 } && !drain.CatchUpWanted))
            {
                ReleaseDrainState();
                return;
            }

            drain.Draining = Task.Run(DrainAsync, CancellationToken.None);
        }
    }

    /// <summary>
    /// One message from the live feed, in the order the server sent them. A message already dispatched (by a gap fill)
    /// is skipped; one that follows the position is dispatched now; one whose predecessor was never seen has the gap
    /// filled from the stream first, off the caller's thread.
    /// </summary>
    public void OnLive(RoomMessage message)
    {
        lock (Gate)
        {
            if (_drain is { Busy: true })
            {
                AddToBacklog(message);
                return;
            }

            if (message.Seq <= _position)
            {
                return;
            }

            if (message.PreviousSeq <= _position && !IsStale)
            {
                DispatchAt(message);
                return;
            }

            var drain = _drain ??= new DrainState();
            drain.Busy = true;
            AddToBacklog(message);
            drain.Draining = Task.Run(DrainAsync, CancellationToken.None);
        }
    }

    /// <summary>
    /// Dispatches whatever the room stored that the live feed has not (after a NATS reconnect). Returns once that ran,
    /// or at once when the room has not started yet (its start reads the position then).
    /// </summary>
    public Task CatchUpAsync(CancellationToken cancellationToken)
    {
        Task draining;
        lock (Gate)
        {
            var drain = _drain ??= new DrainState();
            drain.CatchUpWanted = true;
            if (drain.Busy)
            {
                draining = drain.Draining ?? Task.CompletedTask;
            }
            else
            {
                drain.Busy = true;
                draining = drain.Draining = Task.Run(DrainAsync, CancellationToken.None);
            }
        }

        return draining.WaitAsync(cancellationToken);
    }

    /// <summary>The NATS connection dropped: a pattern checks the stream before its next dispatch, until a catch-up after the reconnect.</summary>
    public void MarkStale()
    {
        if (_pattern is { } pattern)
        {
            Interlocked.Increment(ref pattern.Disconnects);
        }
    }

    /// <summary>Completes once no drain runs (what the live feed handed over meanwhile is dispatched): for closing the feed.</summary>
    public Task IdleAsync()
    {
        lock (Gate)
        {
            return _drain?.Draining ?? Task.CompletedTask;
        }
    }

    /// <summary>
    /// The seam: <paramref name="member"/> starts holding live messages, and the position returned is the last one
    /// dispatched before that. Taken under the gate that every dispatch takes, so every message up to it is in the
    /// stream and every message after it reaches the member's hold: reading the stream up to the seam and then the
    /// hold misses nothing.
    /// </summary>
    public ValueTask<ulong> SeamAsync(IRoomMember member, CancellationToken cancellationToken) => ValueTask.FromResult(Seam(member));

    /// <summary><see cref="SeamAsync"/>, which never waits: for a live join that reads nothing (<c>RoomReader.JoinLive</c>).</summary>
    public ulong Seam(IRoomMember member)
    {
        lock (Gate)
        {
            member.Hold();
            StartConflating(member);
            return _position;
        }
    }

    private bool IsStale => _pattern is { } pattern && Volatile.Read(ref pattern.Disconnects) != pattern.CaughtUpAfter;

    /// <summary>Under the gate, while busy: keeps a live message for the drain; one that finds the backlog full is read from the stream instead.</summary>
    private void AddToBacklog(RoomMessage message)
    {
        var drain = _drain ??= new DrainState();
        var backlog = drain.Backlog ??= new Queue<RoomMessage>();
        if (backlog.Count < Services.BacklogCapacity)
        {
            backlog.Enqueue(message);
        }
        else if (!drain.CatchUpWanted)
        {
            drain.CatchUpWanted = true;
            Services.Metrics.GapFilled();
        }
    }

    /// <summary>
    /// Under the gate, once no drain runs (the room is no longer busy): lets the drain state go unless a retention notice still waits in it (the room
    /// then keeps it until a dispatch gives the notice).
    /// </summary>
    private void ReleaseDrainState()
    {
        if (_drain is not { } drain)
        {
            return;
        }

        drain.Busy = false;
        drain.Backlog = null;
        drain.Draining = null;
        if (drain.Retention is null)
        {
            _drain = null;
        }
    }

    /// <summary>
    /// Owns the dispatch until the backlog is empty: a catch-up when one is wanted, then each waiting message in turn.
    /// A failed read is logged; the next message shows the gap again and fills it (a pattern stays stale).
    /// </summary>
    private async Task DrainAsync()
    {
        while (true)
        {
            RoomMessage? next = null;
            bool catchUp;
            lock (Gate)
            {
                var drain = _drain!;
                catchUp = drain.CatchUpWanted;
                drain.CatchUpWanted = false;
                if (!catchUp && !(drain.Backlog?.TryDequeue(out next) ?? false))
                {
                    ReleaseDrainState();
                    return;
                }
            }

            try
            {
                if (catchUp)
                {
                    await CatchUpToLastAsync();
                }
                else
                {
                    await HandleAsync(next!);
                }
            }
            catch (Exception ex)
            {
                LogFillFailed(Services.Logger, ex, Name);
            }
        }
    }

    /// <summary>A live message, while the drain owns the dispatch: what it needs read first is read, then it is dispatched.</summary>
    private async Task HandleAsync(RoomMessage message)
    {
        if (message.Seq <= _position)
        {
            return;
        }

        if (IsStale)
        {
            await CatchUpToLastAsync();
        }

        if (message.PreviousSeq > _position)
        {
            LogGap(Services.Logger, Name, _position, message.PreviousSeq);
            Services.Metrics.GapFilled();
            await FillAsync(message.PreviousSeq);
        }

        // A pattern's catch-up may have read up to this message already.
        if (message.Seq > _position)
        {
            lock (Gate)
            {
                DispatchAt(message);
            }
        }
    }

    /// <summary>Called by the drain: compares the position with the last stored seq and fills up to it.</summary>
    private async Task CatchUpToLastAsync()
    {
        // A drop seen after this point needs a catch-up of its own: only the count read first is cleared.
        var disconnects = _pattern is { } pattern ? Volatile.Read(ref pattern.Disconnects) : 0;
        var last = await Services.Log.GetLastSeqAsync(Name, CancellationToken.None);
        if (last > _position)
        {
            LogCatchUp(Services.Logger, Name, _position, last);
            await FillAsync(last);
        }

        _pattern?.CaughtUpAfter = disconnects;
    }

    /// <summary>
    /// Dispatches the room's stored messages after the position up to <paramref name="upTo"/>, and finds out whether
    /// retention dropped some before they were read (the first one dispatched after such a hole carries the notice).
    /// Called by the drain.
    /// </summary>
    private async Task FillAsync(ulong upTo)
    {
        var start = _position;
        var check = new DropCheck();
        RetentionGap retention;
        lock (Gate)
        {
            // The drain owns the dispatch: its state is there until the drain ends.
            retention = _drain!.Retention ??= new RetentionGap();
        }

        try
        {
            await foreach (var stored in Services.Log.ReadAsync(Name, start, upTo, CancellationToken.None, check: check))
            {
                if (stored.Seq > _position)
                {
                    // A start no longer stored is known before the first message after it: that one carries the notice.
                    retention.Note(check, start);
                    lock (Gate)
                    {
                        DispatchAt(stored);
                    }
                }
            }
        }
        finally
        {
            // Also when the read failed part way: what it found is reported by the next dispatch.
            retention.Note(check, start);
        }

        // A long fill read on without checking as it went: unless the last message known stored still is, some after it
        // may be gone (the notice then goes with the room's next dispatch).
        await retention.ConfirmAsync(Services.Log, Name, CancellationToken.None);
        if (retention.IsSettled)
        {
            lock (Gate)
            {
                if (_drain is { } drain && ReferenceEquals(drain.Retention, retention))
                {
                    drain.Retention = null;
                }
            }
        }
    }

    /// <summary>
    /// Under the gate: moves the position to <paramref name="message"/> and fans it out. Members that failed it were
    /// closed (their clients resume); the others have it, so the position moves on and a gap fill goes on with the next
    /// message.
    /// </summary>
    private void DispatchAt(RoomMessage message)
    {
        Volatile.Write(ref _position, message.Seq);
        var afterGap = false;
        if (_drain is { Retention: { } retention } drain && retention.TryTake(out var after))
        {
            afterGap = true;
            LogTruncated(Services.Logger, Name, after, message.Seq);
            Services.Metrics.GapTruncated();
            if (retention.IsSettled)
            {
                drain.Retention = null;
                if (!drain.Busy)
                {
                    _drain = null; // no drain runs: nothing else is left in it
                }
            }
        }

        try
        {
            Dispatch(message, afterGap);
        }
        catch (AggregateException ex)
        {
            LogDispatchFailed(Services.Logger, ex, Name, message.Seq);
        }
    }

    /// <summary>
    /// What a room keeps only while it is busy (not started yet, or reading the stream) or owes a retention notice:
    /// whether it is busy, the live messages waiting for the drain, whether a catch-up is wanted, the drain's task, and the retention gap a fill found. Changed under the gate
    /// (the retention gap also by the drain that owns the dispatch).
    /// </summary>
    private sealed class DrainState
    {
        public bool Busy { get; set; }

        public Queue<RoomMessage>? Backlog { get; set; }

        public bool CatchUpWanted { get; set; }

        public Task? Draining { get; set; }

        public RetentionGap? Retention { get; set; }
    }

    /// <summary>A pattern's own: the pattern, the connection drops seen, and the count a catch-up last ran after.</summary>
    private sealed class PatternState(Security.RoomPattern pattern)
    {
        public int Disconnects;

        public Security.RoomPattern Pattern { get; } = pattern;

        public int CaughtUpAfter { get; set; }
    }

    /// <summary>True while the room keeps drain state (for tests: a quiet room keeps none).</summary>
    internal bool HasDrainState
    {
        get
        {
            lock (Gate)
            {
                return _drain is not null;
            }
        }
    }

    [LoggerMessage(EventId = 1203, Level = LogLevel.Information, Message = "Gap in room {Room}: delivered up to {LastSeq}, next follows {PreviousSeq}; filling from the stream")]
    private static partial void LogGap(ILogger logger, string room, ulong lastSeq, ulong previousSeq);

    [LoggerMessage(EventId = 1208, Level = LogLevel.Error, Message = "Delivering message {Seq} of room {Room} failed for some members")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception, string room, ulong seq);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Information, Message = "Catching up room {Room} from {LastSeq} to {StoredSeq}")]
    private static partial void LogCatchUp(ILogger logger, string room, ulong lastSeq, ulong storedSeq);

    [LoggerMessage(EventId = 1209, Level = LogLevel.Debug, Message = "Room {Room}: retention dropped messages after {Start} before the live feed's gap fill read them; its live members are sent truncated after {Seq}")]
    private static partial void LogTruncated(ILogger logger, string room, ulong start, ulong seq);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Error, Message = "Reading room {Room} from the stream to fill a gap failed; its next message tries again")]
    private static partial void LogFillFailed(ILogger logger, Exception exception, string room);
}
