using System.Buffers;
using System.Text.Json;
using Bridge.Client.Protocol;
using Bridge.Contracts;
using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// The rooms the client holds and their joins: which rooms are joined, the join frame in flight for each on the
/// welcomed connection (a new connection joins them all in batch frames, docs/protocol.md §4 "Batch form"), its
/// retries after <c>unavailable</c> or <c>rate_limited</c>, and the live joins a new connection waits for before
/// publishing. Each room's position and buffer belong to its <see cref="RoomFeed"/>.
/// </summary>
internal sealed class RoomTable(BridgeClientOptions options, ILogger logger)
{
    /// <summary>The code of a join refused because it shares rooms with one held.</summary>
    public const string OverlappingJoin = "overlapping_join";

    // A first join refused with `unavailable` (or `rate_limited`) is tried this often before it fails; a held room's
    // rejoin is retried without end (Bridge.Client/README.md).
    private const int MaxJoinAttempts = 5;

    // Entries per batch room.join: the worker's default MaxRoomsPerConnection, beyond which it refuses a batch whole
    // (docs/protocol.md §4), or welcome's maxRoomsPerConnection when smaller. A batch also stays within the smaller of
    // BridgeClientOptions.MaxFrameBytes and welcome's maxFrameBytes (larger: close 1009).
    private const int MaxBatchEntries = 1000;

    // Single joins sent per second when a batch falls back to them: within the worker's frame rate (50/s, burst 100 by
    // default; every frame counts), leaving room for publishes.
    private const int PacedJoinsPerSecond = 32;

    // Room-less part of a batch frame besides its entries: {"type":"room.join","id":"c…","payload":{"rooms":[…]}}.
    private const int BatchFrameOverhead = 96;

    private readonly Lock _lock = new();
    private readonly Dictionary<string, Entry> _rooms = new(StringComparer.Ordinal);

    // The held patterns (also in _rooms), for the messages whose room is not held itself.
    private readonly List<Entry> _patterns = [];

    // The batch joins of the current connection with rooms not joined yet, by id (an error's ref).
    private readonly Dictionary<string, Batch> _batches = new(StringComparer.Ordinal);
    private readonly TimeProvider _time = options.TimeProvider;

    // The current connection's batch limits (Attach).
    private int _batchEntries = MaxBatchEntries;
    private int _batchBytes = options.MaxFrameBytes;

    // The current worker names the room on every batch error (its welcome has maxFrameBytes, docs/protocol.md §4). An
    // older one's room-less errors cannot answer each room of a batch an application waits on (a room joined singly
    // after them may get no answer at all), so GetOrAddMany sends it single joins; a rejoin is batched either way.
    private bool _batchErrorsNameRooms = true;

    // The welcomed connection joins go out on; null between connections.
    private Connection? _connection;
    private BridgeException? _closed;

    /// <summary>
    /// The subscription of <paramref name="room"/> (a room or a pattern): the one held, or a new one made by
    /// <paramref name="create"/>, whose join is sent at once when a connection is welcomed (else on the next welcome).
    /// Throws <see cref="BridgeException"/> with the code the client closed with, or <c>overlapping_join</c> when
    /// <paramref name="room"/> shares rooms with another one held: the worker sends such a room's messages once, so
    /// they could not be told apart.
    /// </summary>
    public RoomSubscription GetOrAdd(string room, Func<RoomSubscription> create)
    {
        lock (_lock)
        {
            if (_closed is { } closed)
            {
                throw closed.Again();
            }

            var (subscription, added, refused) = GetOrAddLocked(room, create);
            if (refused is not null)
            {
                throw refused;
            }

            if (added is not null && _connection is { } connection)
            {
                SendJoinLocked(connection, added);
            }

            return subscription!;
        }
    }

    /// <summary>
    /// <see cref="GetOrAdd"/> for many rooms at once, with one answer per name of <paramref name="rooms"/>, in order:
    /// the subscription held or made (Added: made by this call; a name given twice is made once), or the
    /// <c>overlapping_join</c> error of a name sharing rooms with one held. The rooms made are joined together, in batch
    /// <c>room.join</c> frames sized as a new connection's (<see cref="Attach"/>; single joins to a worker whose batch
    /// errors name no room), at once when a connection is welcomed (else on the next welcome). Throws
    /// <see cref="BridgeException"/> with the code the client closed with.
    /// </summary>
    public List<(RoomSubscription? Subscription, bool Added, BridgeException? Refused)> GetOrAddMany(
        IReadOnlyList<string> rooms, Func<string, RoomSubscription> create)
    {
        lock (_lock)
        {
            if (_closed is { } closed)
            {
                throw closed.Again();
            }

            List<(RoomSubscription?, bool, BridgeException?)> answers = new(rooms.Count);
            List<Entry> added = [];
            foreach (var room in rooms)
            {
                var (subscription, entry, refused) = GetOrAddLocked(room, () => create(room));
                if (entry is not null)
                {
                    added.Add(entry);
                }

                answers.Add((subscription, entry is not null, refused));
            }

            if (_connection is { } connection)
            {
                if (_batchErrorsNameRooms)
                {
                    SendBatchJoinsLocked(connection, added);
                }
                else
                {
                    added.ForEach(entry => SendJoinLocked(connection, entry));
                }
            }

            return answers;
        }
    }

    /// <summary>
    /// The held subscription of <paramref name="room"/>, or a new entry for it (not sent yet), or the
    /// <c>overlapping_join</c> error when it shares rooms with another one held: the worker sends such a room's
    /// messages once, so they could not be told apart. Two concrete rooms overlap only when equal, so a room is
    /// checked against the patterns held, a pattern against everything held.
    /// </summary>
    private (RoomSubscription? Subscription, Entry? Added, BridgeException? Refused) GetOrAddLocked(string room, Func<RoomSubscription> create)
    {
        if (_rooms.TryGetValue(room, out var entry))
        {
            return (entry.Subscription, null, null);
        }

        var candidates = RoomName.IsPattern(room) ? _rooms.Keys : _patterns.Select(p => p.Subscription.Room);
        if (candidates.FirstOrDefault(held => RoomName.Overlaps(held, room)) is { } other)
        {
            return (null, null, new BridgeException(OverlappingJoin, $"'{room}' shares rooms with '{other}', joined already; join one of them"));
        }

        entry = new Entry(create());
        _rooms.Add(room, entry);
        if (entry.Subscription.IsPattern)
        {
            _patterns.Add(entry);
        }

        return (entry.Subscription, entry, null);
    }

    /// <summary>
    /// A connection was welcomed: joins every room on it (resuming from each room's position, with each room's
    /// arguments as a single join sends them), in batch <c>room.join</c> frames of at most 1,000 rooms (fewer when
    /// <paramref name="welcome"/> announces a smaller <c>maxRoomsPerConnection</c>) and at most
    /// <see cref="BridgeClientOptions.MaxFrameBytes"/> bytes (fewer when it announces a smaller <c>maxFrameBytes</c>).
    /// Returns the joins of rooms without a position (live joins): publishes wait for them, so the sender receives its
    /// own messages.
    /// </summary>
    public Task[] Attach(Connection connection, WelcomeInfo welcome)
    {
        List<Task> liveJoins = [];
        lock (_lock)
        {
            _connection = connection;
            _batchEntries = Math.Min(MaxBatchEntries, welcome.MaxRoomsPerConnection ?? MaxBatchEntries);
            _batchBytes = welcome.FrameLimit(options.MaxFrameBytes);
            _batchErrorsNameRooms = welcome.MaxFrameBytes is not null;
            SendBatchJoinsLocked(connection, [.. _rooms.Values]);
            foreach (var entry in _rooms.Values)
            {
                if (entry.Subscription.Position is null)
                {
                    entry.LiveJoin = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    liveJoins.Add(entry.LiveJoin.Task);
                }
            }
        }

        return [.. liveJoins];
    }

    /// <summary>The connection ended: no join is in flight any more; the next welcome joins every room again.</summary>
    public void Detach(Connection connection)
    {
        List<TaskCompletionSource> liveJoins = [];
        lock (_lock)
        {
            if (_connection == connection)
            {
                _connection = null;
            }

            _batches.Clear();
            foreach (var entry in _rooms.Values)
            {
                entry.JoinId = null;
                entry.Batch = null;
                entry.RetryJoinAt = null;
                if (entry.TakeLiveJoin() is { } live)
                {
                    liveJoins.Add(live);
                }
            }
        }

        foreach (var live in liveJoins)
        {
            live.TrySetResult();
        }
    }

    /// <summary>The subscription of a joined room, for its messages; null when the room is not held.</summary>
    public RoomSubscription? Find(string room)
    {
        lock (_lock)
        {
            return _rooms.TryGetValue(room, out var entry) ? entry.Subscription : null;
        }
    }

    /// <summary>
    /// The subscription a message of <paramref name="room"/> belongs to: the room's own, or the one pattern held that
    /// matches it (joins never overlap); null when neither is held.
    /// </summary>
    public RoomSubscription? FindFor(string room)
    {
        lock (_lock)
        {
            if (_rooms.TryGetValue(room, out var entry))
            {
                return entry.Subscription;
            }

            foreach (var pattern in _patterns)
            {
                if (RoomName.Overlaps(pattern.Subscription.Room, room))
                {
                    return pattern.Subscription;
                }
            }

            return null;
        }
    }

    /// <summary>
    /// The application leaves <paramref name="subscription"/>'s room: its buffer ends normally. False when it was not
    /// held (left already). <paramref name="leaveOn"/> is the connection the room is joined on, to send
    /// <c>room.leave</c> on, or null when no join was sent on the current connection.
    /// </summary>
    public bool TryRemove(RoomSubscription subscription, out Connection? leaveOn)
    {
        TaskCompletionSource? live;
        lock (_lock)
        {
            leaveOn = null;
            if (!_rooms.TryGetValue(subscription.Room, out var entry) || entry.Subscription != subscription)
            {
                return false;
            }

            RemoveLocked(entry);
            if (_connection is { } connection && entry.JoinEpoch == connection.Epoch)
            {
                leaveOn = connection;
            }

            // A join answered by room.left instead (§4): the connection must not wait for its room.joined.
            live = entry.TakeLiveJoin();
        }

        subscription.Feed.End(new BridgeException("left", $"left room '{subscription.Room}' before it was joined"), null);
        live?.TrySetResult();
        return true;
    }

    /// <summary>
    /// A <c>room.joined</c>: the join in flight is answered (a live join lets publishes go). Returns the subscription
    /// (which takes the position and tells the application), or null when the room is not held.
    /// A <c>room.joined</c> for a room already joined (the server may send one when the room's retention dropped
    /// messages this connection had not received) is handled the same way.
    /// </summary>
    public RoomSubscription? OnJoined(RoomJoinInfo info)
    {
        RoomSubscription subscription;
        TaskCompletionSource? live;
        lock (_lock)
        {
            if (!_rooms.TryGetValue(info.Room, out var entry))
            {
                return null;
            }

            entry.JoinId = null;
            LeaveBatchLocked(entry);
            entry.RetryJoinAt = null;
            entry.JoinFailures = 0;
            live = entry.TakeLiveJoin();
            subscription = entry.Subscription;
        }

        live?.TrySetResult();
        if (info.Truncated)
        {
            logger.RoomTruncated(info.Room, info.Seq);
        }
        else
        {
            logger.RoomJoined(info.Room, info.Seq, info.Replayed);
        }

        return subscription;
    }

    /// <summary>A <c>room.left</c> nobody asked for: the server removed the room (§1.1: a refreshed token no longer grants it).</summary>
    public void RemovedByServer(string room, string reason)
    {
        Entry? entry;
        TaskCompletionSource? live;
        lock (_lock)
        {
            if (!_rooms.TryGetValue(room, out entry))
            {
                return;
            }

            RemoveLocked(entry);

            live = entry.TakeLiveJoin();
        }

        var error = new BridgeException(reason, $"the server left room '{room}' ({reason})");
        logger.RoomEnded(room, reason);
        entry.Subscription.Feed.End(error, error);
        live?.TrySetResult();
    }

    /// <summary>
    /// An <c>error</c> whose <c>ref</c> is a join in flight: <c>unavailable</c> and <c>rate_limited</c> are retried
    /// after a backoff (the watchdog sends it), without end for a held room (<see cref="RoomFeed.IsHeld"/>), up to
    /// <see cref="MaxJoinAttempts"/> tries for a first join; anything else (or too many tries of a first join) ends the
    /// room with the error, and sends <c>room.leave</c> when a join of it is still unanswered (the worker may join it).
    /// An error of a batch join that names one of its rooms (<paramref name="room"/>, the envelope's) is that room's;
    /// one that names none is about the whole frame, or comes from a worker that names no room
    /// (<see cref="OnBatchErrorLocked"/>). False when no join has that id.
    /// </summary>
    public bool TryFailJoin(string reference, string? room, BridgeException error)
    {
        Entry? failed = null;
        TaskCompletionSource? live = null;
        Action? log = null;
        Connection? leaveOn = null;
        lock (_lock)
        {
            Entry? entry;
            if (_connection is { } connection && _batches.TryGetValue(reference, out var batch))
            {
                if (room is null)
                {
                    log = OnBatchErrorLocked(connection, batch, error.Code);
                    entry = null;
                }
                else
                {
                    // An entry of this batch still waiting for its answer; otherwise it was answered already.
                    entry = _rooms.TryGetValue(room, out var named) && named.Batch == batch ? named : null;
                    if (entry is not null)
                    {
                        LeaveBatchLocked(entry);
                    }
                }
            }
            else
            {
                entry = _rooms.Values.FirstOrDefault(e => e.JoinId == reference);
                if (entry is null)
                {
                    return false;
                }
            }

            if (entry is not null)
            {
                // A single join of the room sent after its batch and not answered: the worker may still join it.
                var joinInFlight = entry.JoinId is { } other && other != reference;
                entry.JoinId = null;

                // A held room (the application's JoinAsync returned) is never given up for a retryable refusal: it is
                // retried for as long as the connection lives, and joined again by every later one; only a first join
                // fails after MaxJoinAttempts.
                if (IsRetryable(error.Code) &&
                    (++entry.JoinFailures < MaxJoinAttempts || entry.Subscription.Feed.IsHeld))
                {
                    var delay = Backoff.Delay(options, entry.JoinFailures);
                    entry.RetryJoinAt = Backoff.TimestampAfter(_time, delay);
                    logger.JoinRetry(entry.Subscription.Room, error.Code, entry.JoinFailures, (long)delay.TotalMilliseconds);
                }
                else
                {
                    RemoveLocked(entry);
                    live = entry.TakeLiveJoin();
                    failed = entry;
                    leaveOn = joinInFlight ? _connection : null;
                }
            }
        }

        log?.Invoke();
        if (failed is not null)
        {
            // Its messages would only be dropped: the worker stops sending them.
            leaveOn?.TrySendRequest(RequestKind.Leave, MessageTypes.RoomLeave, failed.Subscription.Room, null)?.Answer.ContinueWith(
                static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted, TaskScheduler.Default);
            logger.RoomEnded(failed.Subscription.Room, error.Code);
            failed.Subscription.Feed.End(error, error);
            live?.TrySetResult();
        }

        return true;
    }

    /// <summary>The watchdog's tick: sends again the joins whose retry time has come.</summary>
    public void RetryDue(Connection connection, long now)
    {
        lock (_lock)
        {
            if (_connection != connection)
            {
                return;
            }

            foreach (var entry in _rooms.Values)
            {
                if (entry.RetryJoinAt is { } at && now >= at)
                {
                    SendJoinLocked(connection, entry);
                }
            }

            // Batches refused with rate_limited as a whole: sent again (their rooms still waiting) once their backoff is over.
            List<Batch>? due = null;
            foreach (var batch in _batches.Values)
            {
                if (batch.ResendAt is { } at && now >= at)
                {
                    (due ??= []).Add(batch);
                }
            }

            foreach (var batch in due ?? [])
            {
                batch.ResendAt = null;
                SendBatchLocked(connection, [.. batch.Waiting().Select(e => (e, BatchEntry(e)))], batch.Attempt + 1);
            }
        }
    }

    /// <summary>
    /// The client closed for good: every room ends and no new one is taken. <paramref name="endNormally"/> (the
    /// client was disposed) ends the buffers without an error; otherwise reading them throws <paramref name="error"/>.
    /// </summary>
    public void Close(BridgeException error, bool endNormally)
    {
        List<(Entry Entry, TaskCompletionSource? Live)> ended;
        lock (_lock)
        {
            _closed ??= error;
            ended = [.. _rooms.Values.Select(e => (e, e.TakeLiveJoin()))];
            _rooms.Clear();
            _patterns.Clear();
        }

        foreach (var (entry, live) in ended)
        {
            entry.Subscription.Feed.End(error, endNormally ? null : error);
            live?.TrySetResult();
        }
    }

    private static void SendJoinLocked(Connection connection, Entry entry)
    {
        entry.JoinId = connection.NextId();
        entry.JoinEpoch = connection.Epoch;
        entry.RetryJoinAt = null;
        connection.Send(new OutboundFrame(MessageTypes.RoomJoin, entry.Subscription.Room, entry.JoinId, entry.Subscription.Feed.JoinPayload()));
    }

    /// <summary>
    /// Joins <paramref name="entries"/> in batch frames (<c>payload.rooms: [{room, since | latest, maxRate}]</c>, each
    /// entry with the arguments its single join would send): as many entries per frame as fit in
    /// <see cref="MaxBatchEntries"/> and the options' <c>MaxFrameBytes</c>; a frame of one room is a single join.
    /// </summary>
    private void SendBatchJoinsLocked(Connection connection, List<Entry> entries)
    {
        var budget = _batchBytes - BatchFrameOverhead;
        List<(Entry Entry, byte[] Json)> chunk = [];
        var size = 0;
        foreach (var entry in entries)
        {
            var json = BatchEntry(entry);
            if (chunk.Count > 0 && (chunk.Count == _batchEntries || size + json.Length + 1 > budget))
            {
                SendBatchLocked(connection, chunk, 0);
                chunk = [];
                size = 0;
            }

            chunk.Add((entry, json));
            size += json.Length + 1;
        }

        if (chunk.Count > 0)
        {
            SendBatchLocked(connection, chunk, 0);
        }
    }

    /// <summary>
    /// One batch frame for <paramref name="chunk"/> (a new <see cref="Batch"/>; <paramref name="attempt"/>: how often
    /// its rooms were refused with <c>rate_limited</c> as a batch), split in halves while its encoding (MessagePack
    /// numbers can take more bytes than their JSON digits) is larger than the connection's frame limit.
    /// </summary>
    private void SendBatchLocked(Connection connection, List<(Entry Entry, byte[] Json)> chunk, int attempt)
    {
        if (chunk.Count == 0)
        {
            return;
        }

        if (chunk.Count == 1)
        {
            LeaveBatchLocked(chunk[0].Entry);
            SendJoinLocked(connection, chunk[0].Entry);
            return;
        }

        var payload = new ArrayBufferWriter<byte>(chunk.Sum(c => c.Json.Length + 1) + 16);
        payload.Write("{\"rooms\":["u8);
        for (var i = 0; i < chunk.Count; i++)
        {
            if (i > 0)
            {
                payload.Write(","u8);
            }

            payload.Write(chunk[i].Json);
        }

        payload.Write("]}"u8);
        var id = connection.NextId();
        var frame = FrameCodec.Encode(new OutboundFrame(MessageTypes.RoomJoin, null, id, payload.WrittenSpan.ToArray()), connection.Format);
        if (frame.Length > _batchBytes)
        {
            SendBatchLocked(connection, chunk[..(chunk.Count / 2)], attempt);
            SendBatchLocked(connection, chunk[(chunk.Count / 2)..], attempt);
            return;
        }

        var batch = new Batch(id, [.. chunk.Select(c => c.Entry)], attempt);
        _batches.Add(id, batch);
        foreach (var (entry, _) in chunk)
        {
            LeaveBatchLocked(entry);
            entry.JoinId = id;
            entry.Batch = batch;
            entry.JoinEpoch = connection.Epoch;
            entry.RetryJoinAt = null;
        }

        batch.Remaining = chunk.Count;
        connection.Send(frame);
    }

    /// <summary>A batch entry: <c>{"room": name, …the single join's arguments}</c>, UTF-8 JSON.</summary>
    private static byte[] BatchEntry(Entry entry)
    {
        var buffer = new ArrayBufferWriter<byte>(64);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            writer.WriteString("room", entry.Subscription.Room);
            entry.Subscription.Feed.WriteJoinArguments(writer);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>
    /// An error of <paramref name="batch"/> that names no room: about the whole frame, or from a worker that names no
    /// room on any error (docs/protocol.md §12). The first one decides for the batch's rooms still waiting for it:
    /// <c>rate_limited</c> sends them again as one batch after a backoff (up to the join attempts), <c>too_many_rooms</c>
    /// splits them into two batches (down to single joins), anything else joins them one by one, paced within the
    /// worker's frame rate (<see cref="PacedJoinsPerSecond"/>), so each gets its own answer. A later one may be the
    /// failure of an entry whose join was still running when its single join came (a worker answers nothing to a join
    /// of a room whose join is in progress): once per batch, a retryable one (<c>unavailable</c>, <c>rate_limited</c>)
    /// retries the batch's rooms still not joined after a backoff. Returns the log line, written outside the lock.
    /// </summary>
    private Action? OnBatchErrorLocked(Connection connection, Batch batch, string code)
    {
        var waiting = batch.Waiting();
        var pending = batch.Remaining;
        if (!batch.Answered)
        {
            batch.Answered = true;
            string action;
            if (code == ErrorCodes.RateLimited && batch.Attempt + 1 < MaxJoinAttempts)
            {
                batch.ResendAt = Backoff.TimestampAfter(_time, Backoff.Delay(options, batch.Attempt + 1));
                action = "sent again as one batch after a backoff";
            }
            else if (code == ErrorCodes.TooManyRooms && waiting.Count > 1)
            {
                var half = waiting.Count / 2;
                SendBatchLocked(connection, [.. waiting[..half].Select(e => (e, BatchEntry(e)))], batch.Attempt);
                SendBatchLocked(connection, [.. waiting[half..].Select(e => (e, BatchEntry(e)))], batch.Attempt);
                action = "split into two batches";
            }
            else
            {
                var now = _time.GetTimestamp();
                for (var i = 0; i < waiting.Count; i++)
                {
                    if (i < PacedJoinsPerSecond)
                    {
                        SendJoinLocked(connection, waiting[i]);
                    }
                    else
                    {
                        waiting[i].JoinId = null;
                        waiting[i].RetryJoinAt = now + (i / PacedJoinsPerSecond * _time.TimestampFrequency);
                    }
                }

                action = $"joined one by one, {PacedJoinsPerSecond} a second";
            }

            return () => logger.BatchJoinFailed(batch.Id, code, pending, action);
        }

        if (batch.RetriedLate || !IsRetryable(code))
        {
            return null;
        }

        batch.RetriedLate = true;
        var start = Backoff.TimestampAfter(_time, Backoff.Delay(options, 1));
        var retried = 0;
        foreach (var entry in batch.Pending())
        {
            if (entry.RetryJoinAt is null)
            {
                entry.RetryJoinAt = start + (retried++ / PacedJoinsPerSecond * _time.TimestampFrequency);
            }
        }

        return () => logger.BatchJoinFailedAgain(batch.Id, code, pending, retried);
    }

    /// <summary>The room is no longer waiting for its batch's answer (joined, failed, left, or sent in another frame).</summary>
    private void LeaveBatchLocked(Entry entry)
    {
        if (entry.Batch is not { } batch)
        {
            return;
        }

        entry.Batch = null;
        if (--batch.Remaining == 0)
        {
            _batches.Remove(batch.Id);
        }
    }

    private void RemoveLocked(Entry entry)
    {
        LeaveBatchLocked(entry);
        _rooms.Remove(entry.Subscription.Room);
        _patterns.Remove(entry);
    }

    /// <summary>A held room's join state; guarded by the table's lock.</summary>
    private sealed class Entry(RoomSubscription subscription)
    {
        public RoomSubscription Subscription { get; } = subscription;

        /// <summary>Id of the join frame in flight on the current connection (matches an error's <c>ref</c>).</summary>
        public string? JoinId { get; set; }

        /// <summary>The batch join the room was last sent in on the current connection, until it is answered.</summary>
        public Batch? Batch { get; set; }

        /// <summary>The connection epoch the room's join was last sent on.</summary>
        public int JoinEpoch { get; set; } = -1;

        public int JoinFailures { get; set; }

        /// <summary>When a refused join is tried again (TimeProvider timestamp), or null.</summary>
        public long? RetryJoinAt { get; set; }

        /// <summary>A live join the current connection waits for before it sends publishes.</summary>
        public TaskCompletionSource? LiveJoin { get; set; }

        public TaskCompletionSource? TakeLiveJoin()
        {
            var live = LiveJoin;
            LiveJoin = null;
            return live;
        }
    }

    /// <summary>A batch join frame of the current connection and its rooms; guarded by the table's lock.</summary>
    private sealed class Batch(string id, List<Entry> entries, int attempt)
    {
        public string Id { get; } = id;

        /// <summary>Times its rooms were refused with <c>rate_limited</c> as a batch before it was sent.</summary>
        public int Attempt { get; } = attempt;

        /// <summary>Its rooms still waiting for an answer to it (<see cref="Entry.Batch"/> is this batch).</summary>
        public int Remaining { get; set; }

        /// <summary>An error naming no room was handled: the batch's rooms were sent again, split or joined one by one.</summary>
        public bool Answered { get; set; }

        /// <summary>A later error naming no room scheduled retries (once per batch).</summary>
        public bool RetriedLate { get; set; }

        /// <summary>When the batch is sent again after a <c>rate_limited</c> of the whole frame (TimeProvider timestamp), or null.</summary>
        public long? ResendAt { get; set; }

        /// <summary>Its rooms still waiting for an answer to it.</summary>
        public IEnumerable<Entry> Pending() => entries.Where(e => e.Batch == this);

        /// <summary>Its rooms whose only join in flight is this batch (none sent on its own since).</summary>
        public List<Entry> Waiting() => [.. entries.Where(e => e.Batch == this && e.JoinId == Id)];
    }

    /// <summary>
    /// The refusals that say nothing about the room itself (the stream could not be read; the frame was not acted on):
    /// a join refused with one is tried again (protocol.md §12).
    /// </summary>
    private static bool IsRetryable(string code) => code is ErrorCodes.Unavailable or ErrorCodes.RateLimited;
}
