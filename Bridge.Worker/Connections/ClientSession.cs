using System.Buffers;
using Bridge.Contracts;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Bridge.Worker.Security;

namespace Bridge.Worker.Connections;

internal sealed record CloseRequest(int Code, string Reason);

/// <summary>
/// One client connection, whatever its transport: who it is, which rooms it is in, and its bounded send queue.
/// The transport pumps the queue to the wire and watches <see cref="Closing"/>.
/// </summary>
internal sealed class ClientSession
{
    private readonly CancellationTokenSource _closing = new();
    private readonly int _maxConcurrentRequests;
    private readonly int _maxPublishesInFlight;
    private readonly Lock _backgroundGate = new();

    // Created by the first background request (a join with replay, a sync): idle connections never need them.
    private SemaphoreSlim? _backgroundSlots;

    // Background work started and not ended; _idle (made when the connection drains) is completed when it reaches 0.
    private int _running;
    private TaskCompletionSource? _idle;

    // Created by the first publish: most connections only listen.
    private PublishPipeline? _publishes;
    private CloseRequest? _closeRequest;
    private int _closeRequested;
    private int _shutdown;
    private UserIdentity _identity;
    private ITimer? _expiry;

    // The socket whose send buffer shrinks when a conflated member joins (null: not shrunk).
    private System.Net.Sockets.Socket? _socket;
    private int _conflatedSendBuffer;

    // reader: the worker's one room reader, which the connection's memberships read rooms with (SessionRooms.Reader).
    public ClientSession(
        string connectionId, UserIdentity identity, IFrameCodec codec, OutboundQueue queue, RoomReader reader, int maxConcurrentRequests = 16,
        TransportKind transport = TransportKind.WebSocket, int maxPublishesInFlight = 64)
    {
        Transport = transport;
        ArgumentOutOfRangeException.ThrowIfLessThan(maxConcurrentRequests, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxPublishesInFlight, 1);
        _maxConcurrentRequests = maxConcurrentRequests;
        _maxPublishesInFlight = maxPublishesInFlight;
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(codec);
        ArgumentNullException.ThrowIfNull(queue);
        ConnectionId = connectionId;
        _identity = identity;
        Codec = codec;
        Queue = queue;
        Rooms = new SessionRooms(reader);
    }

    public string ConnectionId { get; }

    public TransportKind Transport { get; }

    /// <summary>Who the connection is and what it may join and publish; replaced as a whole by <c>auth.refresh</c>.</summary>
    public UserIdentity Identity => Volatile.Read(ref _identity);

    /// <summary>The user's subject (<c>sub</c>): the <c>from</c> of what the connection publishes.</summary>
    public string User => Identity.Subject;

    public IFrameCodec Codec { get; }

    public OutboundQueue Queue { get; }

    /// <summary>Rooms this connection is in or joining: join, leave, revoke and leave-all go through it.</summary>
    public SessionRooms Rooms { get; }

    /// <summary>Cancelled once the connection must close; <see cref="CloseRequested"/> says why.</summary>
    public CancellationToken Closing => _closing.Token;

    public CloseRequest? CloseRequested => Volatile.Read(ref _closeRequest);

    /// <summary>
    /// Queues a room message if the send queue has room for it; false when it has not (the member then reads the
    /// room from the stream when there is room again) or the connection is closing. A message that cannot be encoded
    /// for this format at all (no frame) counts as sent: it is skipped (counted) for all its members of this format.
    /// Should anything here fail, the connection has missed the message: it is closed with 1011, so its client
    /// resumes from its own position (a gap is signalled, never silent), and the exception goes to the caller, which
    /// goes on with the room's other members. <paramref name="positionKey"/> is the room or pattern the member joined and
    /// <paramref name="position"/> its position once this frame is written (SSE ids and poll cursors are made of them);
    /// a null key advances no position (a latest value, sent before the join's position). <paramref name="replayed"/>:
    /// the message was read for a join (a replay before its <c>room.joined</c>, or a latest value): it is counted as sent
    /// but not timed as a delivery (<see cref="OutboundFrame.Replayed"/>).
    /// </summary>
    public bool TryDeliver(RoomMessage message, string? positionKey, ulong position, bool replayed = false) =>
        TryDeliver(message, positionKey, position, conflated: false, replayed);

    /// <summary>
    /// <see cref="TryDeliver(RoomMessage, string?, ulong, bool)"/> for a conflated member: queued only while the queue is below
    /// its conflation mark (<see cref="OutboundQueue.TryEnqueueConflated"/>).
    /// </summary>
    public bool TryDeliverConflated(RoomMessage message, string positionKey, ulong position) =>
        TryDeliver(message, positionKey, position, conflated: true, replayed: false);

    private bool TryDeliver(RoomMessage message, string? positionKey, ulong position, bool conflated, bool replayed)
    {
        try
        {
            if (message.GetFrame(Codec) is not { } bytes)
            {
                return true;
            }

            var frame = Frame(message, bytes, positionKey, position, replayed);
            return conflated ? Queue.TryEnqueueConflated(frame) : Queue.TryEnqueueMessage(frame);
        }
        catch (Exception)
        {
            RequestClose(CloseCodes.InternalError, "internal error; reconnect and resume");
            throw;
        }
    }

    /// <summary>
    /// <see cref="TryDeliver(RoomMessage, string?, ulong, bool)"/> for a run of messages read from the stream, in order,
    /// each at its own seq as the position in <paramref name="positionKey"/>: the frames that fit are queued in one step
    /// (<see cref="OutboundQueue.TryEnqueueMessages"/>). Returns how many of the first messages are done (queued, or
    /// without a frame for this format: skipped); the rest did not fit. Fails as a single delivery does (closed with 1011,
    /// the exception to the caller).
    /// </summary>
    public int TryDeliverRead(ReadOnlySpan<RoomMessage> messages, string positionKey, bool replayed)
    {
        var frames = ArrayPool<OutboundFrame>.Shared.Rent(messages.Length);
        // The message of each frame: a message without a frame (skipped) has none.
        var sources = ArrayPool<int>.Shared.Rent(messages.Length);
        var count = 0;
        try
        {
            for (var i = 0; i < messages.Length; i++)
            {
                var message = messages[i];
                if (message.GetFrame(Codec) is { } bytes)
                {
                    frames[count] = Frame(message, bytes, positionKey, message.Seq, replayed);
                    sources[count++] = i;
                }
            }

            var queued = Queue.TryEnqueueMessages(frames.AsSpan(0, count));
            return queued == count ? messages.Length : sources[queued];
        }
        catch (Exception)
        {
            RequestClose(CloseCodes.InternalError, "internal error; reconnect and resume");
            throw;
        }
        finally
        {
            ArrayPool<OutboundFrame>.Shared.Return(frames, clearArray: true);
            ArrayPool<int>.Shared.Return(sources);
        }
    }

    private static OutboundFrame Frame(RoomMessage message, byte[] bytes, string? positionKey, ulong position, bool replayed) =>
        new(bytes, message.Type, positionKey, position, Math.Max(1, message.Timestamp), Replayed: replayed);

    /// <summary>
    /// Gives the connection's socket, whose kernel send buffer is set to <paramref name="bytes"/> once a conflated member
    /// joins (<see cref="ConnectionOptions.ConflatedSendBufferBytes"/>).
    /// </summary>
    public void SetConflatedSendBuffer(System.Net.Sockets.Socket socket, int bytes)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentOutOfRangeException.ThrowIfLessThan(bytes, 1);
        _conflatedSendBuffer = bytes;
        Volatile.Write(ref _socket, socket);
    }

    /// <summary>
    /// A conflated member joined: the socket's send buffer is made small (once), so values wait as pending in the
    /// member, where newer ones replace them, rather than in the kernel.
    /// </summary>
    public void UseConflatedSendBuffer()
    {
        if (Interlocked.Exchange(ref _socket, null) is not { } socket)
        {
            return;
        }

        try
        {
            socket.SendBufferSize = _conflatedSendBuffer;
        }
        catch (Exception ex) when (ex is System.Net.Sockets.SocketException or ObjectDisposedException)
        {
            // Closed meanwhile, or the system refused: conflation still works, with the system's buffer.
        }
    }

    /// <summary>
    /// Runs a slow request (a join with replay, a sync) beside the receive loop, so one room's history never
    /// holds up the connection's other frames. At most a fixed number run at once: the caller waits for a slot,
    /// which pushes back on a client that floods requests.
    /// </summary>
    public ValueTask StartBackgroundAsync(Func<CancellationToken, Task> work, CancellationToken cancellationToken) =>
        StartBackgroundAsync(static (work, ct) => new ValueTask(work(ct)), work, cancellationToken);

    /// <summary>
    /// <see cref="StartBackgroundAsync(Func{CancellationToken, Task}, CancellationToken)"/> with the work's
    /// <paramref name="state"/> passed to it, so a caller that starts many (a join per room) needs no closure each.
    /// </summary>
    public ValueTask StartBackgroundAsync<TState>(Func<TState, CancellationToken, ValueTask> work, TState state, CancellationToken cancellationToken)
    {
        var slots = BackgroundSlots();
        if (!cancellationToken.IsCancellationRequested && slots.Wait(0, CancellationToken.None))
        {
            // A free slot: started without a state machine of this method's own.
            Start(work, state, slots);
            return ValueTask.CompletedTask;
        }

        return WaitThenStartAsync(work, state, slots, cancellationToken);
    }

    // Pooled: the caller (the receive loop) awaits it at once, so while the slots are full each request waits in the box
    // the last one gave back.
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WaitThenStartAsync<TState>(Func<TState, CancellationToken, ValueTask> work, TState state, SemaphoreSlim slots, CancellationToken cancellationToken)
    {
        await slots.WaitAsync(cancellationToken);
        Start(work, state, slots);
    }

    private void Start<TState>(Func<TState, CancellationToken, ValueTask> work, TState state, SemaphoreSlim slots)
    {
        Interlocked.Increment(ref _running);
        // Started here, not queued: it runs on the receive loop only until its first wait (a request's first step is
        // to ask NATS or the stream), then beside it; one thread-pool hop less per join.
        _ = RunBackgroundAsync(work, state, slots, offThread: false);
    }

    /// <summary>
    /// Runs many pieces of work (the entries of a batch <c>room.join</c>) as one request: waits for one slot like
    /// <see cref="StartBackgroundAsync{TState}"/>, takes whatever other slots are free at that moment (never waiting for
    /// them), and runs the items on that many lanes, each lane taking the next item when its last one ends and giving its
    /// slot back when none is left; a slot found free after an item (another request's, given back meanwhile) opens one
    /// more lane while items wait. So at most the connection's request slots run at once, as with one request per
    /// item, without a slot wait, a state machine and a task per item. Each item reports its own failures; once the
    /// connection is closing, the items not started yet are not started.
    /// </summary>
    public async ValueTask StartBackgroundBatchAsync<TItem>(IReadOnlyList<TItem> items, Func<TItem, CancellationToken, ValueTask> work, CancellationToken cancellationToken)
    {
        if (items.Count == 0)
        {
            return;
        }

        var slots = BackgroundSlots();
        await slots.WaitAsync(cancellationToken);
        var lanes = 1;
        while (lanes < items.Count && slots.Wait(0, CancellationToken.None))
        {
            lanes++;
        }

        Interlocked.Add(ref _running, lanes);
        var batch = new BackgroundBatch<TItem>(this, slots, items, work) { Lanes = lanes };
        for (var i = 0; i < lanes; i++)
        {
            StartLane(batch, offThread: false);
        }
    }

    // A lane of a batch on a slot already taken (and counted in _running).
    private void StartLane<TItem>(BackgroundBatch<TItem> batch, bool offThread) =>
        _ = RunBackgroundAsync(static (batch, ct) => new ValueTask(batch.RunLaneAsync(ct)), batch, batch.Slots, offThread);

    /// <summary>
    /// Runs work of the worker's own beside the receive loop without taking a request slot (a member catching up
    /// after falling behind); never waits. Leaving all rooms waits for it like for requests.
    /// </summary>
    public void StartBackground(Func<CancellationToken, Task> work)
    {
        Interlocked.Increment(ref _running);
        _ = RunBackgroundAsync(static (work, ct) => new ValueTask(work(ct)), work, null, offThread: true);
    }

    /// <summary>
    /// Runs one piece of background work (from its start on the caller's thread unless <paramref name="offThread"/>) and
    /// counts it out when it ends, its slot (if it has one) released first. A counter, not a set of tasks: no continuation,
    /// lock or set entry per request.
    /// </summary>
    private async Task RunBackgroundAsync<TState>(Func<TState, CancellationToken, ValueTask> work, TState state, SemaphoreSlim? slots, bool offThread)
    {
        try
        {
            if (offThread)
            {
                await Task.Yield();
            }

            await work(state, Closing);
        }
        catch (Exception)
        {
            // Each request reports its own failures.
        }
        finally
        {
            slots?.Release();
            if (Interlocked.Decrement(ref _running) == 0)
            {
                Volatile.Read(ref _idle)?.TrySetResult();
            }
        }
    }

    /// <summary>
    /// The connection's publishes waiting for their ack (<see cref="PublishPipeline"/>), created by the first publish
    /// with the handler's <paramref name="answer"/> and <paramref name="logger"/>.
    /// </summary>
    public PublishPipeline Publishes(Action<ClientSession, PublishInFlight, AwaitedAck, CancellationToken> answer, ILogger logger)
    {
        lock (_backgroundGate)
        {
            return _publishes ??= new PublishPipeline(this, _maxPublishesInFlight, answer, logger);
        }
    }

    private SemaphoreSlim BackgroundSlots()
    {
        lock (_backgroundGate)
        {
            return _backgroundSlots ??= new SemaphoreSlim(_maxConcurrentRequests, _maxConcurrentRequests);
        }
    }

    /// <summary>
    /// Waits for the background work (requests, catch-ups) to finish and the publishes in flight to be answered (all
    /// observe <see cref="Closing"/>).
    /// </summary>
    private async Task DrainBackgroundAsync()
    {
        Task? publishes;
        lock (_backgroundGate)
        {
            publishes = _publishes?.Completion;
        }

        // Published before the count is read, so work ending meanwhile completes it (both interlocked); a drain after an
        // earlier one that has completed waits on a fresh one.
        var idle = Volatile.Read(ref _idle);
        while (idle is null || idle.Task.IsCompleted)
        {
            var fresh = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var seen = Interlocked.CompareExchange(ref _idle, fresh, idle);
            idle = ReferenceEquals(seen, idle) ? fresh : seen;
            if (ReferenceEquals(idle, fresh))
            {
                break;
            }
        }

        if (Volatile.Read(ref _running) == 0)
        {
            idle.TrySetResult();
        }

        try
        {
            await (publishes is null ? idle.Task : Task.WhenAll(idle.Task, publishes));
        }
        catch (Exception)
        {
            // Each request reports its own failures; here we only wait for them to end.
        }
    }

    /// <summary>Leaves every room of the closing connection, once its background joins and catch-ups have ended.</summary>
    public async Task LeaveAllRoomsAsync()
    {
        await DrainBackgroundAsync();
        await Rooms.LeaveAllAsync();
    }

    public void Send(ControlFrame frame) =>
        Send(new OutboundFrame(
            Codec.EncodeControl(frame),
            frame.Type,
            // room.joined carries the connection's position in the room.
            frame.Type == MessageTypes.RoomJoined ? frame.Room : null,
            frame.Seq ?? 0,
            Truncated: frame.Truncated));

    /// <summary>Sends the <c>ack</c> of a stored publish (<see cref="ControlFrames.Ack"/>), encoded without the frame object.</summary>
    public void SendAck(string room, string? id, ulong seq, bool duplicate) =>
        Send(new OutboundFrame(Codec.EncodeAck(room, id, seq, duplicate), MessageTypes.Ack, Seq: seq));

    /// <summary>Sends an <c>error</c>; <paramref name="room"/>: the one room it concerns (<see cref="ControlFrames.Error"/>).</summary>
    public void SendError(string code, string message, string? reference, string? room = null) =>
        Send(ControlFrames.Error(code, message, reference, room));

    /// <summary>
    /// Queues a control frame (an answer, an error, a heartbeat). Room messages pause at the queue's high-water mark,
    /// leaving a reserve for these; a client that overflows even that (it keeps asking and does not read) is closed
    /// with 4008.
    /// </summary>
    public void Send(OutboundFrame frame)
    {
        if (!Queue.TryEnqueue(frame))
        {
            RequestClose(CloseCodes.SlowConsumer, "stalled: send queue full");
        }
    }

    /// <summary>
    /// Replaces the identity (same subject, new token) and closes the connection with 4001 once the token's
    /// <c>exp</c> (plus <paramref name="clockSkew"/>) has passed.
    /// </summary>
    public void SetIdentity(UserIdentity identity, TimeProvider time, TimeSpan clockSkew)
    {
        ArgumentNullException.ThrowIfNull(identity);
        ArgumentNullException.ThrowIfNull(time);
        if (!string.Equals(identity.Subject, Identity.Subject, StringComparison.Ordinal))
        {
            throw new ArgumentException("a connection's user cannot change", nameof(identity));
        }

        Volatile.Write(ref _identity, identity);
        var previous = Interlocked.Exchange(ref _expiry, null);
        previous?.Dispose();
        if (identity.Expires is { } expires)
        {
            var watch = new ExpiryWatch(this, identity, expires + clockSkew, time);
            var timer = time.CreateTimer(static state => ((ExpiryWatch)state!).Fire(), watch, watch.Wait(), Timeout.InfiniteTimeSpan);
            watch.Timer = timer;
            if (Interlocked.CompareExchange(ref _expiry, timer, null) is not null || CloseRequested is not null)
            {
                timer.Dispose();
            }
        }
    }

    /// <summary>
    /// Closes the connection with <c>4001</c> when its identity's token expires. A runtime timer waits at most
    /// <see cref="Rooms.DueTimer.MaxWait"/> (about 49.7 days; a longer wait throws), so a token valid for longer is
    /// watched in steps: a firing before the expiry arms the timer again for the rest. A firing for an identity a
    /// refresh has replaced does nothing (the new one has its own watch).
    /// </summary>
    private sealed class ExpiryWatch(ClientSession session, UserIdentity identity, DateTimeOffset closeAt, TimeProvider time)
    {
        // True when the timer was last armed for less than the wait (the timer's limit): its firing is a step, not the expiry.
        private volatile bool _stepped;

        public ITimer? Timer { get; set; }

        /// <summary>The wait until the expiry, within what a timer takes (zero once it has passed).</summary>
        public TimeSpan Wait()
        {
            var left = closeAt - time.GetUtcNow();
            _stepped = left > Bridge.Worker.Rooms.DueTimer.MaxWait;
            return left <= TimeSpan.Zero ? TimeSpan.Zero : _stepped ? Bridge.Worker.Rooms.DueTimer.MaxWait : left;
        }

        public void Fire()
        {
            if (!ReferenceEquals(session.Identity, identity))
            {
                return;
            }

            if (_stepped && Wait() is var wait && wait > TimeSpan.Zero)
            {
                try
                {
                    Timer?.Change(wait, Timeout.InfiniteTimeSpan);
                }
                catch (ObjectDisposedException)
                {
                    // Replaced or closed meanwhile: nothing left to watch.
                }

                return;
            }

            session.RequestClose(CloseCodes.TokenExpired, "token expired");
        }
    }

    /// <summary>
    /// The worker is shutting down: a WebSocket is closed with 1012 and a reason carrying the delay; a one-way
    /// stream is sent a <c>server.shutdown</c> event first (its transport closes after writing it).
    /// </summary>
    public void Shutdown(int reconnectAfterMs)
    {
        // Once: the drain and a connection added while it begins may both ask (ConnectionTracker.Add).
        if (Interlocked.Exchange(ref _shutdown, 1) != 0)
        {
            return;
        }

        CloseOrNotify(CloseCodes.ServiceRestart, $"service restart; reconnect_after_ms={reconnectAfterMs}", ControlFrames.ServerShutdown(reconnectAfterMs));
    }

    /// <summary>
    /// Ends the connection for the server's own reason: a WebSocket is closed with <paramref name="code"/> and
    /// <paramref name="reason"/>; a one-way stream, which has no close code, is sent <paramref name="notice"/> and its
    /// transport ends once it wrote it (<see cref="TransportKinds.ClosesWithCode"/>).
    /// </summary>
    public void CloseOrNotify(int code, string reason, ControlFrame notice)
    {
        if (Transport.ClosesWithCode())
        {
            RequestClose(code, reason);
        }
        else
        {
            Send(notice);
        }
    }

    /// <summary>Asks the transport to close; the first request wins and later ones are ignored.</summary>
    public bool RequestClose(int code, string reason)
    {
        if (Interlocked.Exchange(ref _closeRequested, 1) != 0)
        {
            return false;
        }

        Volatile.Write(ref _closeRequest, new CloseRequest(code, reason));
        Interlocked.Exchange(ref _expiry, null)?.Dispose();
        Queue.Complete();
        _closing.Cancel();
        return true;
    }

    /// <summary>The items of one <see cref="StartBackgroundBatchAsync{TItem}"/>, taken in order by its lanes.</summary>
    private sealed class BackgroundBatch<TItem>(
        ClientSession session, SemaphoreSlim slots, IReadOnlyList<TItem> items, Func<TItem, CancellationToken, ValueTask> work)
    {
        private int _next = -1;
        private int _lanes;

        public SemaphoreSlim Slots => slots;

        /// <summary>Lanes running (set once by the start, then counted as lanes open and end).</summary>
        public int Lanes
        {
            set => _lanes = value;
        }

        public async Task RunLaneAsync(CancellationToken cancellationToken)
        {
            int index;
            while (!cancellationToken.IsCancellationRequested && (index = Interlocked.Increment(ref _next)) < items.Count)
            {
                try
                {
                    await work(items[index], cancellationToken);
                }
                catch (Exception)
                {
                    // Each item reports its own failures; the lane goes on with the next.
                }

                // More items waiting than the lanes take next, and slots free (requests ended meanwhile): more lanes. A
                // batch that started while the slots were busy grows as they free, rather than running on those it got.
                while (!cancellationToken.IsCancellationRequested
                    && items.Count - 1 - Volatile.Read(ref _next) > Volatile.Read(ref _lanes)
                    && slots.Wait(0, CancellationToken.None))
                {
                    Interlocked.Increment(ref _lanes);
                    Interlocked.Increment(ref session._running); // while this lane still counts: a drain cannot end between
                    session.StartLane(this, offThread: true);
                }
            }

            Interlocked.Decrement(ref _lanes);
        }
    }
}
