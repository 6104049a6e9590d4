using System.Buffers;
using System.Globalization;
using System.Text;
using Bridge.Worker.Rooms;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

/// <summary>
/// Reads one stored message of a consumer's delivery from the bytes NATS.Net's read loop hands over (on that loop):
/// the room message, or null for one the read passes over (a pattern's subject that names no room).
/// </summary>
internal delegate RoomMessage? DeliveryReader(string subject, ulong seq, long timestamp, in ReadOnlySequence<byte>? headers, in ReadOnlySequence<byte> payload);

/// <summary>
/// Pulls from one pull consumer (no acks) into a bounded buffer, without NATS.Net's <c>NatsMsg</c>,
/// <c>NatsHeaders</c> or fetch channel: pull requests go to <c>$JS.API.CONSUMER.MSG.NEXT.&lt;stream&gt;.&lt;consumer&gt;</c>
/// with a reply subject of this subscription's inbox, and each delivery is read on NATS.Net's read loop by a
/// <see cref="DeliveryReader"/> straight from its bytes. The next pull goes out while the last one is still being
/// delivered (at half a batch), as NATS.Net's own <c>ConsumeAsync</c> does, so the server is not left waiting for the
/// reader; at most two pulls are in flight, never more than <c>2 × batch</c> messages asked for and not yet taken.
/// </summary>
/// <remarks>
/// <para>
/// Each pull is <c>{"batch":n,"no_wait":true}</c> with a reply subject of its own (<c>&lt;inbox&gt;.&lt;pull&gt;</c>).
/// The server fills waiting pulls in the order it got them and sends their deliveries and statuses through one queue,
/// so a delivery belongs to the oldest pull not yet full; a status names its pull by its subject. A pull ends full
/// (n deliveries, no status) or short: <c>404 No Messages</c> (the consumer reached the end of what matches) or
/// <c>408</c> (<c>Requests Pending</c>: an earlier pull already asks for all that is pending; or a timeout), with
/// <c>Nats-Pending-Messages</c> saying how many it did not get (nats-server <c>consumer.go</c>,
/// <c>processNextMsgRequest</c> and <c>processWaiting</c>). Any other status (<c>409 Consumer Deleted</c>, …) fails
/// the read with <see cref="NatsJSException"/>, as does no answer at all within the timeout while a pull is open
/// (a reconnect loses pulls in flight).
/// </para>
/// <para>
/// One reader: <see cref="TopUpAsync"/> and <see cref="NextAsync"/> are called by one task at a time. The buffer
/// holds what was asked for and not yet taken, so the read loop never waits on it; a reader that stops taking stops
/// the pulls (the backpressure), and disposing unsubscribes whatever is still on its way.
/// </para>
/// </remarks>
internal sealed class ConsumerPulls : NatsSubBase
{
    private const int MaxPullsInFlight = 2;

    // Deliveries a waiting reader is woken for at most: one thread hand-off per this many, not per delivery (fewer when
    // its pulls have fewer still to bring; a status or stall mark wakes it at once).
    internal const int WakeBatch = 64;

    private readonly INatsConnection _connection;
    private readonly string _nextSubject;
    private readonly string _inbox;
    private readonly ConsumerAckReplies _replies;
    private readonly DeliveryReader _read;
    private readonly TimeSpan _timeout;
    private readonly WakeBatchBuffer<Entry> _entries;
    private readonly ITimer _stall;
    private readonly TimeProvider _time;

    // The reader's wait for an entry (a number per wait, 0 while not waiting) and when it began: the stall timer's view.
    private long _waiting;
    private long _waitStarted;
    private long _lastWait;

    // The status of the stall timer's mark (no server status is negative): its pull is the number of the wait it ends.
    private const int StallMark = -1;

    // The reader's: pulls sent and not yet ended, oldest first, and the number of the last one sent.
    private readonly Queue<Pull> _pulls = new(MaxPullsInFlight);
    private long _lastPull;

    // A pull came back short while another is still open: the consumer had no more than is asked for, so no pull is
    // sent until the open ones end (a pull sent meanwhile would only be answered 408 Requests Pending).
    private bool _caughtUp;

    private ConsumerPulls(
        INatsConnection connection, string inbox, string nextSubject, ConsumerAckReplies replies, int batch, DeliveryReader read, TimeSpan timeout,
        TimeProvider time)
        : base(connection, connection.SubscriptionManager, inbox + ".*", queueGroup: null, opts: null)
    {
        _connection = connection;
        _inbox = inbox;
        _nextSubject = nextSubject;
        _replies = replies;
        Batch = batch;
        _read = read;
        _timeout = timeout;
        _time = time;
        // Room for every message asked for, one status per pull, one stall mark, and one for the reader's count running
        // one high while it takes an entry: the read loop's write never finds it full. Two writers: the read loop, and
        // the stall timer's mark.
        _entries = new WakeBatchBuffer<Entry>((MaxPullsInFlight * batch) + MaxPullsInFlight + 2);
        _stall = time.CreateTimer(static state => ((ConsumerPulls)state!).OnStallTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// The stall timer: marks the wait it finds, if that wait has really gone on for the timeout (fired early, it arms
    /// itself again for the rest). A callback of an earlier
    /// wait that runs late (stopping a timer does not stop a callback already queued) finds a later or no wait and marks
    /// nothing; a mark that a delivery overtook is the mark of a wait already over, which the reader passes over.
    /// </summary>
    private void OnStallTimer()
    {
        var wait = Volatile.Read(ref _waiting);
        if (wait == 0)
        {
            return;
        }

        var elapsed = _time.GetElapsedTime(Volatile.Read(ref _waitStarted));
        if (elapsed < _timeout)
        {
            // Early: a timer counts whole (possibly coarse) milliseconds and may fire before the clock shows the timeout.
            // Armed again for what is left, else this wait would never be marked. Should the wait end meanwhile and the
            // next one arm the timer, this only brings that timer forward: it then finds the next wait early and arms
            // again for its rest.
            if (Volatile.Read(ref _waiting) == wait)
            {
                _stall.Change(_timeout - elapsed, Timeout.InfiniteTimeSpan);
            }

            return;
        }

        if (Volatile.Read(ref _waiting) == wait)
        {
            _entries.TryWrite(new Entry(default, wait, StallMark, null), urgent: true);
        }
    }

    /// <summary>Messages per pull at most.</summary>
    public int Batch { get; }

    /// <summary>Messages asked for by open pulls and not taken by the reader yet (received into the buffer or not).</summary>
    public int Asked
    {
        get
        {
            var asked = 0;
            foreach (var pull in _pulls)
            {
                asked += pull.Size - pull.Received;
            }

            return asked;
        }
    }

    /// <summary>No pull open and nothing received left to take: the consumer is exactly where the reader is.</summary>
    public bool Idle => _pulls.Count == 0 && (_entries.Count == 0 || (_entries.Count == 1 && _entries.TryPeek(out var only) && only.Status == StallMark));

    /// <summary>Subscribes an inbox for the pulls of consumer <paramref name="consumer"/> of <paramref name="stream"/>.</summary>
    /// <param name="connection">The connection the pulls go out and the deliveries come in on.</param>
    /// <param name="apiPrefix">The JetStream API prefix (<c>$JS.API</c>, or a domain's).</param>
    /// <param name="stream">The consumer's stream.</param>
    /// <param name="consumer">A pull consumer with no acks.</param>
    /// <param name="batch">Messages per pull at most (at least 1).</param>
    /// <param name="timeout">How long a reader waits for anything while a pull is open before the read fails.</param>
    /// <param name="read">Reads each delivery into a room message, on NATS.Net's read loop.</param>
    /// <param name="time">The clock of that timeout.</param>
    /// <param name="cancellationToken">Cancels subscribing.</param>
    public static async ValueTask<ConsumerPulls> OpenAsync(
        NatsConnection connection, string apiPrefix, string stream, string consumer, int batch, DeliveryReader read, TimeSpan timeout, TimeProvider time,
        CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(batch, 1);
        // An inbox of its own, not under the connection's: NATS.Net serves those through its one shared inbox
        // subscription (_INBOX.<connection>.*), which only matches one token more than the prefix.
        var inbox = "_INBOX." + Guid.NewGuid().ToString("N");
        var pulls = new ConsumerPulls(
            connection, inbox, $"{apiPrefix}.CONSUMER.MSG.NEXT.{stream}.{consumer}", new ConsumerAckReplies(stream, consumer), batch, read, timeout, time);
        await connection.AddSubAsync(pulls, cancellationToken);
        return pulls;
    }

    /// <summary>
    /// Sends a pull if the reader will want more than is asked for: at most <paramref name="wanted"/>
    /// messages in all (what the read may still take, from now), one pull while the open ones have more than half a
    /// batch still to bring. True when it sent one.
    /// </summary>
    public ValueTask<bool> TopUpAsync(int wanted, CancellationToken cancellationToken)
    {
        // Called per message: most calls send nothing and return without an async method's machinery.
        var ahead = Asked;
        if (_pulls.Count == 0)
        {
            _caughtUp = false;
        }

        if (_pulls.Count == MaxPullsInFlight || (_pulls.Count > 0 && (_caughtUp || ahead > Batch / 2)))
        {
            return ValueTask.FromResult(false);
        }

        var size = Math.Min(Batch, Math.Min(wanted, MaxPullsInFlight * Batch) - ahead);
        if (size <= 0)
        {
            return ValueTask.FromResult(false);
        }

        var id = ++_lastPull;
        _pulls.Enqueue(new Pull(id, size));
        return SendPullAsync(id, size, cancellationToken);
    }

    private async ValueTask<bool> SendPullAsync(long id, int size, CancellationToken cancellationToken)
    {
        await _connection.PublishAsync(
            _nextSubject,
            Encoding.ASCII.GetBytes($"{{\"batch\":{size},\"no_wait\":true}}"),
            replyTo: string.Create(CultureInfo.InvariantCulture, $"{_inbox}.{id}"),
            cancellationToken: cancellationToken);
        return true;
    }

    /// <summary>
    /// The next entry the read loop received, waiting for one if need be (woken once the deliveries the open pulls still
    /// have to bring are here, a batch at most, or at once by a status): a wait that gets nothing within the timeout (the
    /// stall timer's mark for this very wait comes first) fails. Marks of earlier waits are passed over.
    /// </summary>
    private async ValueTask<Entry> TakeAsync(CancellationToken cancellationToken)
    {
        long ended = 0;
        while (true)
        {
            if (_entries.TryRead(out var entry))
            {
                if (entry.Status != StallMark)
                {
                    return entry;
                }

                if (entry.Pull == ended)
                {
                    throw new NatsJSException($"no answer to a pull of {_nextSubject} within {_timeout}");
                }

                continue; // a mark of a wait that a delivery ended first
            }

            if (_entries.IsCompleted)
            {
                // The read loop got more than the pulls asked for, or the pulls were disposed.
                throw _entries.Error ?? new ObjectDisposedException(nameof(ConsumerPulls));
            }

            var wait = ++_lastWait;
            Volatile.Write(ref _waitStarted, _time.GetTimestamp());
            Volatile.Write(ref _waiting, wait);
            _stall.Change(_timeout, Timeout.InfiniteTimeSpan);
            try
            {
                // Every delivery asked for and not taken is still to come (nothing is buffered): at least that many, or a
                // status ending a pull short, will wake this wait.
                await _entries.WaitAsync(Math.Min(WakeBatch, Asked), cancellationToken);
            }
            finally
            {
                Volatile.Write(ref _waiting, 0);
                _stall.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            }

            ended = wait;
        }
    }

    /// <summary>
    /// The next delivery, or the end of a pull that came back short. Call only while not <see cref="Idle"/>.
    /// </summary>
    /// <exception cref="NatsJSException">
    /// A delivery that is not the consumer's, an error status, or nothing within the timeout while a pull is open.
    /// </exception>
    public ValueTask<Pulled> NextAsync(CancellationToken cancellationToken)
    {
        // What the read loop already buffered is taken without an async method's machinery (most calls of a replay:
        // "Replay, sixth pass (issue 14)"); marks found outside a wait are of waits already over.
        while (_entries.TryRead(out var entry))
        {
            if (entry.Status != StallMark && Handle(entry) is { } taken)
            {
                return ValueTask.FromResult(taken);
            }

            if (entry.Status != StallMark && Idle)
            {
                return ValueTask.FromResult(Pulled.Short(0));
            }
        }

        return NextWaitingAsync(cancellationToken);
    }

    private async ValueTask<Pulled> NextWaitingAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            if (Handle(await TakeAsync(cancellationToken)) is { } taken)
            {
                return taken;
            }

            if (Idle)
            {
                return Pulled.Short(0);
            }
        }
    }

    /// <summary>
    /// What an entry means for the reader: a delivery, the end of a pull that came back short, or null for the status
    /// of a pull already over (it was filled, then ended): nothing for the reader.
    /// </summary>
    private Pulled? Handle(in Entry entry)
    {
        if (entry.Failure is { } failure)
        {
            throw failure;
        }

        if (entry.Status == 0)
        {
            if (!_pulls.TryPeek(out var head))
            {
                throw new NatsJSException($"a delivery for no open pull of {_nextSubject}");
            }

            head.Received++;
            var full = head.Received == head.Size;
            if (full)
            {
                _pulls.Dequeue();
            }

            return entry.Delivery with { PullFilled = full };
        }

        if (entry.Status is not (404 or 408))
        {
            throw new NatsJSException($"a pull of {_nextSubject} failed with status {entry.Status}");
        }

        // The pull the status names is over; deliveries still to come belong to the ones before it.
        var received = -1;
        for (var i = _pulls.Count; i > 0; i--)
        {
            var pull = _pulls.Dequeue();
            if (pull.Id == entry.Pull)
            {
                received = pull.Received;
            }
            else
            {
                _pulls.Enqueue(pull);
            }
        }

        _caughtUp = true;
        return received < 0 ? null : Pulled.Short(received);
    }

    protected override ValueTask ReceiveInternalAsync(string subject, string? replyTo, ReadOnlySequence<byte>? headersBuffer, ReadOnlySequence<byte> payloadBuffer)
    {
        Entry entry;
        try
        {
            entry = Receive(subject, replyTo, headersBuffer, payloadBuffer);
        }
        catch (Exception ex)
        {
            // Whatever a backend stored, the read loop goes on: the read fails and is started again on a new consumer.
            entry = new Entry(default, 0, 0, ex);
        }

        if (entry.Status == 100)
        {
            return ValueTask.CompletedTask; // an idle heartbeat (never asked for): nothing for the reader
        }

        // A delivery wakes the reader only with the rest of what it waits for; anything else ends a pull or the read.
        if (!_entries.TryWrite(entry, urgent: entry.Status != 0 || entry.Failure is not null))
        {
            _entries.Complete(new NatsJSException($"more deliveries for {_nextSubject} than its pulls asked for"));
        }

        return ValueTask.CompletedTask;
    }

    private Entry Receive(string subject, string? replyTo, in ReadOnlySequence<byte>? headers, in ReadOnlySequence<byte> payload)
    {
        if (replyTo is not null)
        {
            if (!_replies.TryParse(replyTo, out var seq, out var delivered, out var timestamp))
            {
                return new Entry(default, 0, 0, new NatsJSException($"a delivery for {_nextSubject} with reply subject '{replyTo}'"));
            }

            var size = subject.Length + (int)(headers?.Length ?? 0) + (int)payload.Length;
            return new Entry(new Pulled(seq, delivered, size, _read(subject, seq, timestamp, headers, payload)), 0, 0, null);
        }

        // A status: its subject is the reply subject of the pull it ends.
        var status = HeaderBlock.Read(headers, Encoding.ASCII).Status;
        var dot = subject.LastIndexOf('.');
        if (status == 0 || dot < 0 || !long.TryParse(subject.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var pull))
        {
            return new Entry(default, 0, 0, new NatsJSException($"a message for {_nextSubject} that is neither a delivery nor a status, on {subject}"));
        }

        return new Entry(default, pull, status, null);
    }

    // Nothing to complete: the reader stops with the subscription.
    protected override void TryComplete()
    {
    }

    /// <summary>Unsubscribes: whatever is still on its way is dropped by NATS.Net.</summary>
    public override async ValueTask DisposeAsync()
    {
        await _stall.DisposeAsync();
        await base.DisposeAsync();
        _entries.Complete();
    }

    private sealed class Pull(long id, int size)
    {
        public long Id { get; } = id;

        public int Size { get; } = size;

        public int Received { get; set; }
    }

    /// <summary>What the read loop received: a delivery, a status ending pull <see cref="Pull"/>, or a failure.</summary>
    private readonly record struct Entry(Pulled Delivery, long Pull, int Status, Exception? Failure);
}

/// <summary>
/// One delivery of a consumer (its stream seq, consumer seq, size in bytes and room message, null when the read passes
/// over it), or the end of a pull that came back short with <see cref="ShortWith"/> deliveries.
/// </summary>
internal readonly record struct Pulled(ulong Seq, ulong Delivered, int Size, RoomMessage? Message)
{
    /// <summary>Deliveries of a pull that ended short; -1 for a delivery.</summary>
    public int ShortWith { get; private init; } = -1;

    /// <summary>This delivery was the last its pull asked for.</summary>
    public bool PullFilled { get; init; }

    public bool IsDelivery => ShortWith < 0;

    public static Pulled Short(int received) => new(0, 0, 0, null) { ShortWith = received };
}
