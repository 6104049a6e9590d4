namespace Bridge.Worker.Rooms;

/// <summary>
/// One member's side of conflation (a join with <c>maxRate</c>), in a <see cref="ConflationGroup"/> that chooses each
/// room's values for all members of its rate: what this member must do alone. A value it is handed goes to its
/// connection's queue while that is below its conflation mark (<see cref="Connections.OutboundQueue.TryEnqueueConflated"/>);
/// otherwise (or while joining) the member owes the room, and sends the room's newest value (<see cref="RoomSlot.Latest"/>,
/// read when it sends, not the one it was handed) as soon as the queue has taken what it held (<see cref="Drained"/>),
/// oldest owed first. A screen that reads slowly gets fewer, fresher values; the other members of its group are not
/// affected, and a conflated member never falls behind and never reads the stream.
/// </summary>
/// <remarks>
/// <para>
/// Rate: the group hands a room out at most once per interval. A value this member sends off the group's schedule (a
/// <c>latest</c> value, <see cref="Sent"/>; an owed room sent at a drain) is recorded, and a value the group hands it
/// within one interval after is owed until then, with a timer of this member's own armed only while it has such rooms:
/// never two values of a room within one interval, and the last value of a burst still goes.
/// </para>
/// <para>
/// Not thread-safe: its owner calls it under its own lock (the gate given to the constructor), which the group's
/// <see cref="Take"/> and this member's timer take too. Never takes the group's lock.
/// </para>
/// <para>
/// Its <see cref="Position"/> is below the first message of a room it owes, and below the group's (the first message
/// the group still holds pending): a resume from it (a conflated join's <c>since</c>) sends each room's newest after
/// it, so nothing a screen shows is left stale.
/// </para>
/// </remarks>
internal sealed class ConflatedMember : IDisposable
{
    // Only the rooms this member owes or sent off the group's schedule (most rooms have none).
    private readonly Dictionary<string, Owed> _rooms = new(StringComparer.Ordinal);

    // Owed rooms by when they may be sent, and by their first unsent seq (for the position); stale entries are skipped.
    // Ties (rooms owed at one time) go in the order they were owed.
    private readonly PriorityQueue<Owed, (long Due, long Order)> _due = new();
    private readonly PriorityQueue<Owed, ulong> _unsent = new();
    private readonly TimeProvider _time;
    private readonly object _gate;
    private readonly Func<RoomMessage, ulong, bool> _send;
    private readonly Action _waitForRoom;
    private ConflationGroup? _group;
    private ulong _seam;
    private readonly DueTimer _timer;
    private long _order;
    private bool _active;
    private bool _waiting;
    private bool _disposed;

    /// <param name="maxRate">Messages per second per room (<see cref="ConflatedMember.IsValidRate"/>).</param>
    /// <param name="time">The clock of the intervals (the group's is the first member's).</param>
    /// <param name="gate">The owner's lock, held around every call and taken by the group's hand-outs and this timer.</param>
    /// <param name="send">Queues a message with the position it leaves the member at; false when the queue is above its conflation mark.</param>
    /// <param name="waitForRoom">
    /// Asks the queue to call <see cref="Drained"/> (under the gate) once it is below its conflation mark again; called
    /// once after each refused send, until then nothing is offered to <paramref name="send"/>.
    /// </param>
    public ConflatedMember(double maxRate, TimeProvider time, object gate, Func<RoomMessage, ulong, bool> send, Action waitForRoom)
    {
        if (!IsValidRate(maxRate))
        {
            throw new ArgumentOutOfRangeException(nameof(maxRate), maxRate, RateMessage);
        }

        Rate = maxRate;
        _time = time;
        _gate = gate;
        _send = send;
        _waitForRoom = waitForRoom;
        Interval = IntervalOf(maxRate, time);
        _timer = new DueTimer(time, static state => ((ConflatedMember)state!).OnTimer(), this);
    }

    /// <summary>The largest <c>maxRate</c> accepted, in messages per second per room (one per millisecond).</summary>
    public const double MaxRateLimit = 1000;

    /// <summary>The rule a <c>maxRate</c> breaks, after its name (and the entry it belongs to, in a batch).</summary>
    public static readonly string RateRule = $"must be a number of messages per second per room, above 0 and at most {MaxRateLimit}";

    /// <summary>The one wording of a refused <c>maxRate</c>, for every transport (through JoinOptions).</summary>
    public static readonly string RateMessage = $"maxRate {RateRule}";

    /// <summary>True when <paramref name="rate"/> is a <c>maxRate</c> this worker accepts: the one place of that decision.</summary>
    public static bool IsValidRate(double rate) => double.IsFinite(rate) && rate > 0 && rate <= MaxRateLimit;

    /// <summary>Messages per second per room: the key of its group in a room.</summary>
    public double Rate { get; }

    /// <summary>The clock, for the group this member creates.</summary>
    public TimeProvider Time => _time;

    private long Interval { get; }

    /// <summary>
    /// The interval of <paramref name="maxRate"/> in <paramref name="time"/>'s timestamp units: at least one, and at most
    /// <see cref="DueTimer.MaxWait"/>, so that a tiny rate a join accepts (<c>1e-9</c>, <c>1e-300</c>) still arms a timer
    /// and adds to a timestamp without overflowing: any rate below one value per <see cref="DueTimer.MaxWait"/> (about
    /// 49.7 days) conflates at that rate.
    /// </summary>
    internal static long IntervalOf(double maxRate, TimeProvider time) =>
        (long)Math.Clamp(time.TimestampFrequency / maxRate, 1, DueTimer.MaxWait.TotalSeconds * time.TimestampFrequency);

    /// <summary>The group this member is in, once its seam added it.</summary>
    public ConflationGroup? Group => Volatile.Read(ref _group);

    /// <summary>Before <see cref="Activate"/>: values handed to it are only owed (the member is joining).</summary>
    public bool IsActive => _active;

    /// <summary>
    /// The seq up to which every message of its rooms was sent or replaced by a newer one of the same room that was: the
    /// group's position, below the first message of a room this member owes (see the remarks); 0 before it joined a group.
    /// </summary>
    public ulong Position => Math.Min(Group?.Position ?? 0, OwnBound);

    private ulong OwnBound
    {
        get
        {
            while (_unsent.TryPeek(out var owed, out var first))
            {
                if (owed.IsOwed && owed.FirstUnsent == first)
                {
                    return first - 1;
                }

                _unsent.Dequeue();
            }

            return ulong.MaxValue;
        }
    }

    /// <summary>Called by <paramref name="group"/> under its lock when it adds this member at its seam.</summary>
    internal void Joined(ConflationGroup group, ulong seam)
    {
        lock (_gate)
        {
            _seam = seam;
            Volatile.Write(ref _group, group);
        }
    }

    /// <summary>
    /// A value of <paramref name="room"/> the group hands out (under the group's lock, at <paramref name="now"/>):
    /// <paramref name="firstUnsent"/> is the room's first message not handed out before it, <paramref name="groupPosition"/>
    /// the group's position with it handed out. Sent now, or owed.
    /// </summary>
    public void Take(RoomSlot room, RoomMessage message, ulong firstUnsent, ulong groupPosition, long now)
    {
        lock (_gate)
        {
            if (_disposed || message.Seq <= _seam)
            {
                return; // gone, or history its join covered already
            }

            Owed? entry = null;
            if (_rooms.Count > 0 && _rooms.TryGetValue(room.Room, out entry))
            {
                entry.Slot ??= room;
                if (entry.IsOwed || message.Seq <= entry.SentSeq)
                {
                    return; // it sends the room's newest when it can, or sent this one already
                }

                if (now < entry.NextAllowed)
                {
                    Owe(entry, firstUnsent, entry.NextAllowed); // sent off schedule less than an interval ago
                    return;
                }
            }

            if (_active && !_waiting)
            {
                if (_send(message, Math.Min(groupPosition, OwnBound)))
                {
                    if (entry is not null)
                    {
                        _rooms.Remove(room.Room); // the group's schedule rules this room again
                    }

                    return;
                }

                WaitForRoom();
            }

            entry ??= Add(room.Room);
            entry.Slot = room;
            Owe(entry, firstUnsent, now);
        }
    }

    /// <summary>The connection's queue is below its conflation mark again: sends the owed rooms that are due, oldest first.</summary>
    public void Drained()
    {
        _waiting = false;
        Flush();
    }

    /// <summary>
    /// Marks <paramref name="room"/> as just sent (a latest value sent outside the group's hand-outs, its seq
    /// <paramref name="seq"/>): the group's next value of it waits for the interval like any other.
    /// </summary>
    public void Sent(string room, ulong seq)
    {
        if (!_rooms.TryGetValue(room, out var entry))
        {
            entry = Add(room);
        }

        entry.SentSeq = Math.Max(entry.SentSeq, seq);
        entry.NextAllowed = _time.GetTimestamp() + Interval;
    }

    /// <summary>The member is live: sends what it was handed while it was joining (each room's newest).</summary>
    public void Activate()
    {
        _active = true;
        Flush();
    }

    private Owed Add(string room)
    {
        var entry = new Owed();
        _rooms.Add(room, entry);
        return entry;
    }

    private void Owe(Owed entry, ulong firstUnsent, long due)
    {
        if (!entry.IsOwed)
        {
            entry.IsOwed = true;
            entry.FirstUnsent = firstUnsent;
            _unsent.Enqueue(entry, firstUnsent);
        }

        entry.Due = due;
        _due.Enqueue(entry, (due, _order++));
        if (_active && !_waiting && due < _timer.Due)
        {
            ArmTimer();
        }
    }

    private void WaitForRoom()
    {
        _waiting = true;
        _waitForRoom();
    }

    /// <summary>Sends every owed room that is due, each with its newest value; re-arms the timer for the next one.</summary>
    private void Flush()
    {
        if (_disposed || !_active || _waiting)
        {
            return;
        }

        var now = _time.GetTimestamp();
        while (_due.TryPeek(out var entry, out var key) && key.Due <= now)
        {
            _due.Dequeue();
            var due = key.Due;
            if (!entry.IsOwed || entry.Due != due)
            {
                continue; // sent or rescheduled since
            }

            entry.IsOwed = false;
            var message = Volatile.Read(ref entry.Slot!.Latest)!;
            if (message.Seq <= entry.SentSeq)
            {
                continue; // nothing newer than what it sent
            }

            if (_send(message, Position))
            {
                entry.SentSeq = message.Seq;
                entry.NextAllowed = now + Interval;
                continue;
            }

            // The queue is above its mark: every other send would be refused too. Keep this one first in line (and the
            // others), and go on when the queue has drained.
            entry.IsOwed = true;
            _unsent.Enqueue(entry, entry.FirstUnsent);
            _due.Enqueue(entry, key);
            WaitForRoom();
            break;
        }

        ArmTimer();
    }

    /// <summary>Arms this member's timer for its next owed room due later, or stops it (none, or waiting for the queue).</summary>
    private void ArmTimer()
    {
        long next = long.MaxValue;
        while (!_waiting && _due.TryPeek(out var entry, out var key))
        {
            if (entry.IsOwed && entry.Due == key.Due)
            {
                next = key.Due;
                break;
            }

            _due.Dequeue();
        }

        if (next == long.MaxValue || _disposed || !_active)
        {
            _timer.Stop();
            return;
        }

        _timer.Arm(next);
    }

    private void OnTimer()
    {
        lock (_gate)
        {
            _timer.Fired();
            Flush();
        }
    }

    /// <summary>Stops sending: what it owes is dropped with the member (its group drops it when it leaves the room).</summary>
    public void Dispose()
    {
        _disposed = true;
        _timer.Dispose();
        _rooms.Clear();
        _due.Clear();
        _unsent.Clear();
    }

    /// <summary>One room this member owes, or sent off the group's schedule.</summary>
    private sealed class Owed
    {
        /// <summary>The group's slot, whose newest value is sent (null for a room only sent as a latest value so far).</summary>
        public RoomSlot? Slot;

        /// <summary>True while the member owes the room a value.</summary>
        public bool IsOwed;

        /// <summary>The seq of the first message it was not sent since it last sent the room: its position stays below it.</summary>
        public ulong FirstUnsent;

        /// <summary>When the owed room may be sent (its entry in the due queue).</summary>
        public long Due;

        /// <summary>The seq it last sent of the room off the group's schedule.</summary>
        public ulong SentSeq;

        /// <summary>Clock timestamp from which the room may be sent again after an off-schedule send.</summary>
        public long NextAllowed;
    }
}
