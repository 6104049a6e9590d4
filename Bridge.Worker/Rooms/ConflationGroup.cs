namespace Bridge.Worker.Rooms;

/// <summary>
/// Conflation shared by every member of one <see cref="Room"/> (or pattern) joined with the same <c>maxRate</c>
/// (docs/design/shared-conflation.md): per concrete room, at most one value per interval (1 / maxRate), always the newest,
/// chosen once for all of them and handed to each (<see cref="ConflatedMember.Take"/>). A message that comes while its
/// room is inside its interval replaces the room's pending one; the pending one goes to every member when the interval
/// ends (the trailing edge), so the last message of a burst is always delivered. Per update: one lock, one lookup and a
/// reference write, whatever the number of members; per delivered value: what each member must do alone (its queue,
/// its backpressure, its position, its overlap group).
/// </summary>
/// <remarks>
/// <para>
/// Owns its rooms' slots, its due and unsent heaps, its one timer and its position; never a member's queue, owed rooms
/// or position. Lock order: the room's lock (dispatch, join, leave), then this group's, then a member's, then its
/// overlap group's and its queue's. A member never takes this lock: it reads <see cref="RoomSlot.Latest"/> and
/// <see cref="Position"/> with volatile reads.
/// </para>
/// <para>
/// Its <see cref="Position"/> is the seq up to which every message offered was handed to the members or replaced by a
/// newer one of its room that was: below the first message still pending, or the newest offered.
/// </para>
/// </remarks>
internal sealed partial class ConflationGroup
{
    private readonly Lock _gate = new();
    private readonly Dictionary<string, RoomSlot> _slots = new(StringComparer.Ordinal);

    // Pending rooms by when they are due, and by the seq of their first unsent message (for the position). Entries are
    // not removed when a room is sent: one whose slot no longer matches is skipped when it comes up.
    private readonly PriorityQueue<RoomSlot, long> _due = new();
    private readonly PriorityQueue<RoomSlot, ulong> _unsent = new();
    private readonly List<ConflatedMember> _members = [];
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly string _name;
    private ConflatedMember[] _snapshot = [];
    private readonly DueTimer _timer;
    private ulong _offered;
    private ulong _position;
    private bool _disposed;

    /// <param name="name">The room or pattern (for logs).</param>
    /// <param name="maxRate">Messages per second per concrete room (<see cref="ConflatedMember.IsValidRate"/>).</param>
    /// <param name="time">The clock of the intervals and of the trailing-edge timer.</param>
    /// <param name="logger">Where a member failing in the timer's tick is logged.</param>
    public ConflationGroup(string name, double maxRate, TimeProvider time, ILogger logger)
    {
        if (!ConflatedMember.IsValidRate(maxRate))
        {
            throw new ArgumentOutOfRangeException(nameof(maxRate), maxRate, ConflatedMember.RateMessage);
        }

        _name = name;
        _time = time;
        _logger = logger;
        Rate = maxRate;
        Interval = ConflatedMember.IntervalOf(maxRate, time);
        _timer = new DueTimer(time, static state => ((ConflationGroup)state!).OnTimer(), this);
    }

    /// <summary>Messages per second per room.</summary>
    public double Rate { get; }

    /// <summary>1 / <see cref="Rate"/>, in the clock's timestamp units (at least one).</summary>
    public long Interval { get; }

    /// <summary>Messages replaced by a newer one of their room before they were handed out.</summary>
    public long Replaced { get; private set; }

    /// <summary>The group's position (see the remarks), published for members to read without the group's lock.</summary>
    public ulong Position => Volatile.Read(ref _position);

    public int MemberCount
    {
        get
        {
            lock (_gate)
            {
                return _members.Count;
            }
        }
    }

    /// <summary>
    /// Adds <paramref name="member"/> at its seam (called under the room's lock, which orders it against dispatches):
    /// nothing offered before is its to send.
    /// </summary>
    public void Add(ConflatedMember member)
    {
        lock (_gate)
        {
            member.Joined(this, _offered);
            _members.Add(member);
            _snapshot = [.. _members];
        }
    }

    /// <summary>Takes <paramref name="member"/> out; true when it was the last one: the group and its timer are then disposed.</summary>
    public bool Remove(ConflatedMember member)
    {
        lock (_gate)
        {
            if (_members.Remove(member))
            {
                _snapshot = [.. _members];
            }

            if (_members.Count > 0)
            {
                return false;
            }

            _disposed = true;
            _timer.Dispose();
            _slots.Clear();
            _due.Clear();
            _unsent.Clear();
            return true;
        }
    }

    /// <summary>True while the group's timer exists (for tests: the last member leaving disposes it).</summary>
    internal bool HasTimer
    {
        get
        {
            lock (_gate)
            {
                return _timer.Exists;
            }
        }
    }

    /// <summary>
    /// A message of one of the group's rooms, in stream order (from the room's dispatch): handed to every member now when
    /// its room may send, otherwise pending. A member that throws is added to <paramref name="failures"/>; the others
    /// still get the value.
    /// </summary>
    public void Offer(RoomMessage message, ref List<Exception>? failures)
    {
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _offered = Math.Max(_offered, message.Seq);
            if (!_slots.TryGetValue(message.Room, out var slot))
            {
                slot = new RoomSlot(message.Room);
                _slots.Add(message.Room, slot);
            }

            Volatile.Write(ref slot.Latest, message);
            if (slot.IsPending)
            {
                // Most offers of a busy room: no clock read, nothing handed out.
                Replaced++;
                PublishPosition();
                return;
            }

            var now = _time.GetTimestamp();
            if (now >= slot.NextAllowed)
            {
                slot.NextAllowed = now + Interval;
                PublishPosition();
                HandOut(slot, message, message.Seq, now, ref failures);
                return;
            }

            slot.IsPending = true;
            slot.FirstUnsent = message.Seq;
            _unsent.Enqueue(slot, message.Seq);
            slot.Due = slot.NextAllowed;
            _due.Enqueue(slot, slot.Due);
            PublishPosition();
            if (slot.Due < _timer.Due)
            {
                ArmTimer();
            }
        }
    }

    /// <summary>Under the lock: hands a room's value to every member; one member's failure does not cost the others it.</summary>
    private void HandOut(RoomSlot slot, RoomMessage message, ulong firstUnsent, long now, ref List<Exception>? failures)
    {
        var position = _position;
        foreach (var member in _snapshot)
        {
            try
            {
                member.Take(slot, message, firstUnsent, position, now);
            }
            catch (Exception ex)
            {
                (failures ??= []).Add(ex);
            }
        }
    }

    /// <summary>Under the lock: below the first message still pending, or the newest offered.</summary>
    private void PublishPosition()
    {
        var position = _offered;
        while (_unsent.TryPeek(out var slot, out var first))
        {
            if (slot.IsPending && slot.FirstUnsent == first)
            {
                position = first - 1;
                break;
            }

            _unsent.Dequeue();
        }

        Volatile.Write(ref _position, position);
    }

    private void OnTimer()
    {
        List<Exception>? failures = null;
        lock (_gate)
        {
            _timer.Fired();
            if (_disposed)
            {
                return;
            }

            var now = _time.GetTimestamp();
            while (_due.TryPeek(out var slot, out var due) && due <= now)
            {
                _due.Dequeue();
                if (!slot.IsPending || slot.Due != due)
                {
                    continue; // handed out or rescheduled since
                }

                // Cleared before it is handed out: the position moves past it for every member that takes it.
                slot.IsPending = false;
                slot.NextAllowed = now + Interval;
                PublishPosition();
                HandOut(slot, slot.Latest!, slot.FirstUnsent, now, ref failures);
            }

            ArmTimer();
        }

        if (failures is not null)
        {
            LogTickFailed(_logger, new AggregateException(failures), _name, failures.Count);
        }
    }

    /// <summary>Under the lock: arms the one timer for the next room due, or stops it when none is pending.</summary>
    private void ArmTimer()
    {
        long next = long.MaxValue;
        while (_due.TryPeek(out var slot, out var due))
        {
            if (slot.IsPending && slot.Due == due)
            {
                next = due;
                break;
            }

            _due.Dequeue();
        }

        if (next == long.MaxValue || _disposed)
        {
            _timer.Stop();
            return;
        }

        _timer.Arm(next);
    }

    [LoggerMessage(EventId = 1212, Level = LogLevel.Error, Message = "Conflated delivery in {Room} failed for {Count} member(s); the others were sent the values")]
    private static partial void LogTickFailed(ILogger logger, Exception exception, string room, int count);
}

/// <summary>
/// One concrete room's conflation state in a <see cref="ConflationGroup"/>. Its fields other than <see cref="Latest"/>
/// are the group's, under its lock; <see cref="Latest"/> is written under it and read by members without it
/// (<see cref="RoomMessage"/> is immutable).
/// </summary>
internal sealed class RoomSlot(string room)
{
    /// <summary>The concrete room.</summary>
    public string Room { get; } = room;

    /// <summary>The newest message of the room offered to the group.</summary>
    public RoomMessage? Latest;

    /// <summary>Clock timestamp from which the room may be handed out again.</summary>
    public long NextAllowed;

    /// <summary>True while <see cref="Latest"/> waits for the interval to end.</summary>
    public bool IsPending;

    /// <summary>The seq of the first message that became pending since the room was last handed out.</summary>
    public ulong FirstUnsent;

    /// <summary>When the pending message is due (its entry in the due queue).</summary>
    public long Due;
}
