using System.Buffers;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Connections;

/// <summary>
/// Reads a room from the stream for a member until it is on the live dispatch: a join with <c>since</c> (a resume),
/// and a live member that fell behind (its queue was full of room messages), are the same path. The member reads
/// from its position towards the room's live position without holding live messages; once it has caught up with
/// where the room was, it takes the seam, reads the rest up to it while live messages after the seam are held, and
/// goes live. A member still slower than the room overflows its hold and goes round again, reading, never closed:
/// only a connection that writes nothing for <see cref="ConnectionOptions.StallTimeout"/> is closed (4008).
/// </summary>
/// <remarks>
/// Reads are paced, not shared: each read brings in no more than the member's queue has room for (so memory per member behind is its queue bytes plus that one read, however far behind), a
/// member waits for headroom in its queue before its next read without holding anything, and at most
/// <see cref="ConnectionOptions.MaxConcurrentStreamReads"/> reads run on a worker at once: the others wait their
/// turn. Sharing one reader per room would save stream reads when many members of one room are at the same
/// position, but members fall behind at different positions and read at their own speed; pacing keeps each
/// member's memory bounded and the stream's load capped without coupling members to each other.
/// </remarks>
internal sealed partial class RoomReader
{
    // After a failed read of a member already joined: wait, then read again (the connection stays).
    private static readonly TimeSpan RetryMin = TimeSpan.FromMilliseconds(200);

    // Most messages a read hands to a member in one step (RoomMembership.DeliverRead).
    private const int ReadBatch = 128;
    private static readonly TimeSpan RetryMax = TimeSpan.FromSeconds(5);

    private readonly IRoomLog _log;
    private readonly BridgeMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger<RoomReader> _logger;
    private readonly SemaphoreSlim _reads;
    private readonly int _maxLatestRooms;
    private int _behind;

    public RoomReader(IRoomLog log, BridgeMetrics metrics, IOptions<ConnectionOptions> options, TimeProvider time, ILogger<RoomReader> logger)
    {
        _log = log;
        _metrics = metrics;
        _time = time;
        _logger = logger;
        var o = options.Value;
        _reads = new SemaphoreSlim(o.MaxConcurrentStreamReads, o.MaxConcurrentStreamReads);
        HoldCapacity = o.JoinBufferCapacity;
        HoldBytes = o.SendQueueMaxBytes;
        _maxLatestRooms = o.MaxLatestRooms;
        metrics.ObserveLaggingMembers(() => Behind);
    }

    /// <summary>The clock of members' retries and of conflated members' intervals.</summary>
    public TimeProvider Time => _time;

    /// <summary>Live messages a member holds past the seam before it gives up and reads again.</summary>
    public int HoldCapacity { get; }

    /// <summary>Payload bytes a member holds past the seam before it gives up and reads again.</summary>
    public long HoldBytes { get; }

    /// <summary>Members on this worker that fell behind the live dispatch and are not live again yet.</summary>
    public int Behind => Volatile.Read(ref _behind);

    /// <summary>
    /// Joins <paramref name="member"/> (attached to <paramref name="room"/> at its <c>since</c>, or at 0 to join live):
    /// reads the room from its <c>since</c> if given, sends <c>room.joined</c> at the first seam, and goes live
    /// (or, when it is slower than the room, goes on reading until it is). With <c>latest</c> (or conflated with
    /// <c>since</c>), it takes the seam first and sends the newest message of each room up to it instead of reading.
    /// Returns once <c>room.joined</c> is queued; a failure before that is thrown (the caller answers <c>unavailable</c>,
    /// or <c>too_many_rooms</c> for a <see cref="LatestLimitException"/>), a failure after it is retried.
    /// </summary>
    public async ValueTask<JoinResult?> JoinAsync(RoomMembership member, Room room, CancellationToken cancellationToken)
    {
        // A resume is a resume (§5: every message after since): latest applies to a join without since. A conflated
        // member never reads the stream: its since asks for each room's newest message after it instead.
        var options = member.Options;
        if (member.IsConflated ? options.Latest || options.Since is not null : options.Latest && options.Since is null)
        {
            return await JoinWithLatestAsync(member, room, cancellationToken);
        }

        // A conflated member never reads the stream: without since or latest, it joins live.
        var since = member.IsConflated ? null : options.Since;
        if (since is null)
        {
            return JoinLive(member, room);
        }

        var join = new Progress(isJoin: true, since);
        bool live;
        try
        {
            live = await RoundAsync(member, room, join, cancellationToken);
        }
        finally
        {
            await join.DisposeAsync();
        }

        if (!join.Answered)
        {
            return null; // closed while joining
        }

        if (!live && member.State != MemberState.Closed)
        {
            // Slower than the room already: the same catch-up a live member gets when it falls behind.
            StartCatchUp(member);
        }

        return new JoinResult(join.Position, join.Replayed, join.Truncated, Latest: null);
    }

    /// <summary>
    /// A live join (no <c>since</c>, no <c>latest</c>; <paramref name="member"/> attached to <paramref name="room"/>): it
    /// reads nothing, so it never waits. Its position is the seam, taken now; <c>room.joined</c> is queued at it and the
    /// member goes live (or, when what it held since the seam overflowed, reads on as a member behind does). Null when
    /// the member was closed (left) meanwhile. <see cref="JoinAsync"/> and a batch's live joins (<c>RoomJoiner</c>) both
    /// come here.
    /// </summary>
    public JoinResult? JoinLive(RoomMembership member, Room room)
    {
        var seam = room.Sequence.Seam(member);
        var position = Math.Max(member.Position, seam);
        if (!member.Activate(ControlFrames.RoomJoined(room.Name, position, 0, false), position))
        {
            if (member.State == MemberState.Closed)
            {
                return null;
            }

            // Slower than the room already: the same catch-up a live member gets when it falls behind.
            StartCatchUp(member);
        }

        return new JoinResult(position, 0, false, Latest: null);
    }

    /// <summary>
    /// A join with <c>latest</c>: the seam first (live messages after it are held, or pending in a conflated member), then
    /// the newest message of each room up to the seam (after <c>since</c> for a conflated resume: what it missed, newest
    /// per room), paced by the member's queue, then <c>room.joined</c> at the seam and live. Nothing is read twice and
    /// nothing falls between the latest values and the live messages: every message after the seam is held.
    /// </summary>
    private async Task<JoinResult?> JoinWithLatestAsync(RoomMembership member, Room room, CancellationToken cancellationToken)
    {
        var options = member.Options;
        var seam = await room.Sequence.SeamAsync(member, cancellationToken);
        // Latest: every room's newest up to the seam; a conflated resume: only those after its since.
        var after = options.Latest ? 0 : options.Since ?? 0;
        var sent = 0;
        await _reads.WaitAsync(cancellationToken);
        ILatestPages pages;
        try
        {
            pages = await _log.ReadLatestEachAsync(room.Name, after, seam, _maxLatestRooms, cancellationToken);
        }
        finally
        {
            _reads.Release();
        }

        var queue = member.Session.Queue;
        var page = (IReadOnlyList<RoomMessage>)[];
        var next = 0;
        while (true)
        {
            if (next == page.Count)
            {
                await queue.WaitForHeadroomAsync(cancellationToken);
                var (frames, bytes) = queue.RoomForMessages;
                await _reads.WaitAsync(cancellationToken);
                try
                {
                    page = await pages.NextAsync(new ReadLimit(Math.Max(1, frames), Math.Max(1, bytes)), cancellationToken);
                }
                finally
                {
                    _reads.Release();
                }

                next = 0;
                if (page.Count == 0)
                {
                    break;
                }
            }

            switch (member.DeliverLatest(page[next]))
            {
                case ReadResult.Closed:
                    return null;
                case ReadResult.Full:
                    await queue.WaitForHeadroomAsync(cancellationToken);
                    continue;
            }

            next++;
            sent++;
        }

        _metrics.LatestSent(sent);
        var position = Math.Max(member.Position, seam);
        var joined = ControlFrames.RoomJoined(room.Name, position, 0, false, latest: sent);
        if (!member.Activate(joined, position))
        {
            if (member.State == MemberState.Closed)
            {
                return null;
            }

            // The hold overflowed while the latest values went out: read on from the seam, as a member behind does.
            StartCatchUp(member);
        }

        return new JoinResult(position, 0, false, sent);
    }

    /// <summary>Starts reading for a member that fell behind; never waits (called from the live dispatch).</summary>
    public void StartCatchUp(RoomMembership member) =>
        member.Session.StartBackground(ct => CatchUpAsync(member, ct));

    private async Task CatchUpAsync(RoomMembership member, CancellationToken cancellationToken)
    {
        if (member.Room is not { } room)
        {
            return;
        }

        LogFellBehind(member.ConnectionId, member.RoomName, member.Position);
        var progress = new Progress(isJoin: false, since: null);
        var retry = RetryMin;
        try
        {
            // Holding too: a round that failed after its seam goes round again (the hold stays valid).
            while (member.State is MemberState.Reading or MemberState.Holding)
            {
                try
                {
                    if (await RoundAsync(member, room, progress, cancellationToken))
                    {
                        LogCaughtUp(member.ConnectionId, member.RoomName, member.Position);
                        return;
                    }

                    retry = RetryMin;
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    // The NATS side failing (timeouts included): the member stays, and reads again later.
                    LogReadFailed(ex, member.ConnectionId, member.RoomName, retry);
                    await Task.Delay(retry, _time, cancellationToken);
                    retry = TimeSpan.FromTicks(Math.Min(retry.Ticks * 2, RetryMax.Ticks));
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The connection is closing.
        }
        finally
        {
            await progress.DisposeAsync();
        }
    }

    /// <summary>
    /// One round: read towards the live position, take the seam, read up to it, activate. True when the member is
    /// live at the end; false when it is closed or still behind (a catch-up goes round again).
    /// </summary>
    private async Task<bool> RoundAsync(RoomMembership member, Room room, Progress progress, CancellationToken cancellationToken)
    {
        // Towards the room's live position without holding, then (past the seam) the rest up to the seam. (A live join
        // reads nothing and never comes here: JoinLive.)
        if (!await ReadTowardsAsync(member, room, null, progress, cancellationToken))
        {
            return false;
        }

        var seam = await room.Sequence.SeamAsync(member, cancellationToken);
        if (!await ReadTowardsAsync(member, room, seam, progress, cancellationToken))
        {
            return false;
        }

        // A gap a failed or empty read found and did not report yet is reported before the member goes live.
        await ConfirmAsync(room, progress, cancellationToken);
        ReportGap(member, room, progress);
        ControlFrame? joined = null;
        var position = Math.Max(member.Position, seam);
        if (progress is { IsJoin: true, Answered: false })
        {
            if (progress.Since is > 0 and var since && !progress.SinceChecked)
            {
                progress.Truncated = !await _log.IsStoredInRoomAsync(room.Name, since, cancellationToken);
            }

            // A `since` that is not (or no longer) this room's is not trusted as a position: only what was read is.
            position = progress.Truncated && progress.Replayed == 0 ? seam : position;
            progress.Position = position;
            progress.Answered = true;
            joined = ControlFrames.RoomJoined(room.Name, position, progress.Replayed, progress.Truncated);
        }

        return member.Activate(joined, position);
    }

    /// <summary>
    /// Reads until the member's position reaches <paramref name="seam"/> (null: the room's live position, looked up
    /// again before each read); false when the membership closed meanwhile.
    /// </summary>
    private async Task<bool> ReadTowardsAsync(RoomMembership member, Room room, ulong? seam, Progress progress, CancellationToken cancellationToken)
    {
        while (member.Position < (seam ?? room.Sequence.Position))
        {
            switch (await ReadAsync(member, room, seam ?? room.Sequence.Position, progress, cancellationToken))
            {
                case ReadOutcome.Closed:
                    return false;
                case ReadOutcome.ReachedTarget:
                    return true;
            }
        }

        return true;
    }

    /// <summary>
    /// One paced read for <paramref name="member"/>, from its position towards <paramref name="target"/>: waits for
    /// headroom in its queue, then for a read slot, then queues what fits.
    /// </summary>
    private async Task<ReadOutcome> ReadAsync(RoomMembership member, Room room, ulong target, Progress progress, CancellationToken cancellationToken)
    {
        var queue = member.Session.Queue;
        await queue.WaitForHeadroomAsync(cancellationToken);
        var (frames, bytes) = queue.RoomForMessages;
        var start = member.Position;
        var count = 0;
        var full = false;
        var closed = false;
        long oldest = 0;
        // What this read finds out about retention (a start no longer stored, or a message to confirm afterwards).
        var check = new DropCheck();
        var goneAfterRead = false;
        var batch = ArrayPool<RoomMessage>.Shared.Rent(ReadBatch);
        var held = 0;
        await _reads.WaitAsync(cancellationToken);
        try
        {
            try
            {
                // One cursor for all of a join's or catch-up's reads: each goes on where the last ended.
                progress.Cursor ??= _log.OpenCursor(room.Name);
                // Handed to the member a batch at a time: what the cursor has at hand (its next message comes without
                // waiting), up to ReadBatch, goes to the send queue in one step (issue 14).
                var replayed = progress.IsJoin && !progress.Answered;
                var messages = progress.Cursor.ReadAsync(
                    start, target, mustReach: target, new ReadLimit(Math.Max(1, frames), Math.Max(1, bytes)), check, cancellationToken).GetAsyncEnumerator(CancellationToken.None);
                try
                {
                    while (true)
                    {
                        var next = messages.MoveNextAsync();
                        if (held > 0 && (held == batch.Length || !next.IsCompleted) && !Deliver())
                        {
                            await next; // an enumerator is disposed only between its steps: the message is not taken
                            break;
                        }

                        if (!await next)
                        {
                            break;
                        }

                        batch[held++] = messages.Current;
                    }
                }
                finally
                {
                    try
                    {
                        // The end of the read, or a failure part way: what was read before it is still handed over.
                        if (held > 0)
                        {
                            Deliver();
                        }
                    }
                    finally
                    {
                        await messages.DisposeAsync();
                    }
                }

                // Hands the held messages to the member: false when it took not all of them (full or closed).
                bool Deliver()
                {
                    if (replayed)
                    {
                        // A join's read knows of a gap at its start before it hands over the messages after it (the first
                        // direct get starts at the position): taken now, so that a transport answering part way through
                        // the replay (a long-poll's page) is told with the first of them (ReportGap).
                        progress.Gap.Note(check, start);
                        ReportGap(member, room, progress);
                    }

                    var result = member.DeliverRead(batch.AsSpan(0, held), replayed, out var taken);
                    if (taken > 0 && count == 0)
                    {
                        oldest = batch[0].Timestamp;
                    }

                    count += taken;
                    held = 0;
                    closed = result == ReadResult.Closed;
                    full = result == ReadResult.Full;
                    return result == ReadResult.Sent;
                }
            }
            finally
            {
                // Kept even when the read fails part way: a gap found is reported once messages after it are queued
                // (now, failed or not), else by a later read or before the member goes live.
                progress.Gap.Note(check, start);
                if (count > 0)
                {
                    ReportGap(member, room, progress);
                }
            }

            if (!closed)
            {
                goneAfterRead = await ConfirmAsync(room, progress, cancellationToken);
            }
        }
        finally
        {
            _reads.Release();
            ArrayPool<RoomMessage>.Shared.Return(batch, clearArray: true);
            // Counted also when the read ends early (the connection closing): what was queued was read.
            Account(progress, start, count, oldest);
        }

        if (closed)
        {
            return ReadOutcome.Closed;
        }

        if (count == 0 && !full && (check.Dropped || goneAfterRead))
        {
            if (!check.Dropped)
            {
                // Only the check after the read found the gap: the consumer returned nothing, which proves nothing about
                // what is stored up to the target. A new cursor's first read answers that in one consistent direct get.
                await progress.Cursor!.DisposeAsync();
                progress.Cursor = null;
                return ReadOutcome.More;
            }

            // Retention dropped everything up to the target: that is the position now. The notice follows the messages
            // after the gap (the next read's), or goes before the member is live.
            member.SkipTo(target);
        }
        else if (count == 0 && !full && start > 0 && start < target)
        {
            // The start is kept and the target is a later message of the room, so something is stored between them
            // that the read did not return (a fetch that came back empty under load): read again.
            throw new InvalidOperationException($"the stream returned nothing after {start} in room '{room.Name}', short of {target}");
        }

        if (goneAfterRead && count > 0)
        {
            ReportGap(member, room, progress);
        }

        return full || count > 0 && member.Position < target ? ReadOutcome.More : ReadOutcome.ReachedTarget;
    }

    private void Account(Progress progress, ulong start, int count, long oldest)
    {
        if (progress.IsJoin && !progress.Answered)
        {
            progress.Replayed += count;
            progress.SinceChecked |= start == progress.Since;
            _metrics.Replayed(count);
        }
        else
        {
            _metrics.CatchUpRead(count, oldest);
        }
    }

    /// <summary>
    /// Confirms the message a read left to confirm (kept by the member's progress until this succeeds): true when it is
    /// no longer stored, so messages after it may have been dropped unread (the gap is then kept for <see cref="ReportGap"/>).
    /// </summary>
    private ValueTask<bool> ConfirmAsync(Room room, Progress progress, CancellationToken cancellationToken) =>
        progress.FoundGap?.ConfirmAsync(_log, room.Name, cancellationToken) ?? ValueTask.FromResult(false);

    /// <summary>
    /// Tells the member of a gap found: a joining member by its <c>room.joined</c> (and, on a transport that may answer
    /// part way through the replay, by a <c>room.joined</c> with <c>truncated</c> now, before the messages after the gap),
    /// any other by a <c>room.joined</c> with <c>truncated</c> now (once the messages after it are queued), as a resume would be.
    /// </summary>
    private void ReportGap(RoomMembership member, Room room, Progress progress)
    {
        if (progress.FoundGap is not { } gap || !gap.TryTake(out var after))
        {
            return;
        }

        if (progress.IsJoin && !progress.Answered)
        {
            // Reported by room.joined after the replay. A transport that may answer before that (a long-poll's page) is
            // also told now, once, ahead of the messages after the gap: a room.joined with truncated, as a catch-up is.
            if (!progress.Truncated && member.Session.Transport.AnswersMidReplay())
            {
                member.SendTruncated();
            }

            progress.Truncated = true;
            return;
        }

        // Behind the room for longer than retention keeps: say so as a resume would, then go on from what is kept.
        LogTruncated(member.ConnectionId, room.Name, after, member.Position);
        _metrics.CatchUpTruncated();
        member.SendTruncated();
    }

    internal void FellBehind(RoomMembership member)
    {
        Interlocked.Increment(ref _behind);
        _metrics.FellBehind(member.Session.Transport);
    }

    internal void CaughtUp(RoomMembership member) => Interlocked.Decrement(ref _behind);

    private enum ReadOutcome
    {
        /// <summary>The read reached its target (or the stream has nothing more up to it).</summary>
        ReachedTarget,

        /// <summary>The read stopped short (the queue's room): read again after headroom.</summary>
        More,

        Closed,
    }

    /// <summary>
    /// One member's reading: for a join, what <c>room.joined</c> will say; for a catch-up, the position after which
    /// it was last told that messages may be gone; and the cursor its reads go through.
    /// </summary>
    private sealed class Progress(bool isJoin, ulong? since) : IAsyncDisposable
    {
        public IRoomCursor? Cursor { get; set; }

        public ValueTask DisposeAsync() => Cursor?.DisposeAsync() ?? ValueTask.CompletedTask;

        public bool IsJoin { get; } = isJoin;

        public ulong? Since { get; } = since;

        /// <summary>What its reads found out about retention, until reported (created by the first read: a live join reads nothing).</summary>
        public RetentionGap Gap => FoundGap ??= new();

        /// <summary><see cref="Gap"/> if a read created it.</summary>
        public RetentionGap? FoundGap { get; private set; }

        public bool SinceChecked { get; set; }

        public int Replayed { get; set; }

        public bool Truncated { get; set; }

        public bool Answered { get; set; }

        public ulong Position { get; set; }
    }

    [LoggerMessage(EventId = 2111, Level = LogLevel.Debug, Message = "Connection {ConnectionId} fell behind in {Room} at {Seq}; reading the room from the stream")]
    private partial void LogFellBehind(string connectionId, string room, ulong seq);

    [LoggerMessage(EventId = 2112, Level = LogLevel.Debug, Message = "Connection {ConnectionId} caught up in {Room} at {Seq}; live again")]
    private partial void LogCaughtUp(string connectionId, string room, ulong seq);

    [LoggerMessage(EventId = 2113, Level = LogLevel.Debug, Message = "Connection {ConnectionId} is behind {Room} beyond retention: messages after {Start} may be gone (now at {Seq}); sent truncated")]
    private partial void LogTruncated(string connectionId, string room, ulong start, ulong seq);

    [LoggerMessage(EventId = 2114, Level = LogLevel.Warning, Message = "Connection {ConnectionId} could not read {Room} from the stream; retrying in {Delay}")]
    private partial void LogReadFailed(Exception exception, string connectionId, string room, TimeSpan delay);
}

/// <summary>What <c>room.joined</c> said: the position, messages replayed before it, and whether retention cut the resume short.</summary>
internal readonly record struct JoinResult(ulong Position, int Replayed, bool Truncated, int? Latest);
