using Bridge.Worker.Rooms;

namespace Bridge.Worker.Connections;

/// <summary>
/// Conflation for one member joined with <c>maxRate</c>: per room (each room a pattern matches on its own), at most one
/// message per interval (1 / maxRate), always the newest. A message that comes while its room is inside its interval
/// replaces the room's pending one (never queued behind it), and the pending one is sent when the interval ends (the
/// trailing edge): the last message of a burst is always delivered, so no stale value stays on a screen. The rate also
/// follows the connection: a send is handed to the connection's queue only while that is below its conflation mark
/// (<see cref="OutboundQueue.TryEnqueueConflated"/>), otherwise the room's value stays pending (replaced by newer ones)
/// and the rooms due go, oldest due first, as soon as the queue has taken what it held (<see cref="Drained"/>), not an
/// interval later. A screen that reads slowly gets fewer, fresher values; a conflated member never falls behind and
/// never reads the stream.
/// </summary>
/// <remarks>
/// <para>
/// Not thread-safe: its owner calls it under its own lock, which it also takes in the timer's callback
/// (the gate given to its constructor). Cost per member: one slot per room that sent it a message (its last send time, its pending
/// message) and one timer; each offer is a dictionary lookup and, for a pending room, a heap insertion.
/// </para>
/// <para>
/// Its <see cref="Position"/> is the seq up to which every message of its rooms was sent or replaced by a newer one of the
/// same room that was sent: below the first message still pending (waiting for its interval or for the connection's
/// queue alike). A resume from it (a conflated join's <c>since</c>)
/// sends each room's newest message after it, so nothing a screen shows is left stale.
/// </para>
/// </remarks>
internal sealed class Conflater : IDisposable
{
    private readonly Dictionary<string, Slot> _slots = new(StringComparer.Ordinal);

    // Pending rooms by when they may be sent, and by the seq of their first unsent message (for the position). Entries
    // are not removed when a room is sent: one whose slot no longer matches is skipped when it comes up.
    private readonly PriorityQueue<Slot, long> _due = new();
    private readonly PriorityQueue<Slot, ulong> _unsent = new();
    private readonly TimeProvider _time;
    private readonly long _interval;
    private readonly Lock _gate;
    private readonly Func<RoomMessage, ulong, bool> _send;
    private readonly Action _waitForRoom;
    private ITimer? _timer;
    private long _timerDue = long.MaxValue;
    private ulong _offered;
    private bool _active;
    private bool _waiting;
    private bool _disposed;

    /// <param name="maxRate">Messages per second per room (validated by <see cref="JoinOptions.IsValidRate"/>).</param>
    /// <param name="time">The clock of the intervals and of the trailing-edge timer.</param>
    /// <param name="gate">The owner's lock, held around every call and taken by the timer.</param>
    /// <param name="send">Queues a message with the position it leaves the member at; false when the queue is above its conflation mark.</param>
    /// <param name="waitForRoom">
    /// Asks the queue to call <see cref="Drained"/> (under the gate) once it is below its conflation mark again; called
    /// once after each refused send, until then nothing is offered to <paramref name="send"/>.
    /// </param>
    public Conflater(double maxRate, TimeProvider time, Lock gate, Func<RoomMessage, ulong, bool> send, Action waitForRoom)
    {
        if (!JoinOptions.IsValidRate(maxRate))
        {
            throw new ArgumentOutOfRangeException(nameof(maxRate), maxRate, JoinOptions.MaxRateMessage);
        }

        _time = time;
        _gate = gate;
        _send = send;
        _waitForRoom = waitForRoom;
        // In the clock's own timestamp units; at least one.
        _interval = Math.Max(1, (long)(time.TimestampFrequency / maxRate));
    }

    /// <summary>Messages replaced by a newer one of their room before they were sent.</summary>
    public long Replaced { get; private set; }

    /// <summary>
    /// The seq up to which every offered message was sent or replaced by a sent one of its room (see the remarks); 0
    /// before any was offered.
    /// </summary>
    public ulong Position
    {
        get
        {
            while (_unsent.TryPeek(out var slot, out var first))
            {
                if (slot.Pending is not null && slot.FirstUnsent == first)
                {
                    return first - 1;
                }

                _unsent.Dequeue();
            }

            return _offered;
        }
    }

    /// <summary>Before <see cref="Activate"/>: offered messages only become pending (the member is joining).</summary>
    public bool IsActive => _active;

    /// <summary>A message of one of the member's rooms, in stream order: sent now when its room may send, otherwise pending.</summary>
    public void Offer(RoomMessage message)
    {
        if (_disposed)
        {
            return;
        }

        _offered = Math.Max(_offered, message.Seq);
        if (!_slots.TryGetValue(message.Room, out var slot))
        {
            slot = new Slot();
            _slots.Add(message.Room, slot);
        }

        if (slot.Pending is not null)
        {
            // Most offers of a busy room (no clock read: this runs for every member on every update).
            slot.Pending = message;
            Replaced++;
            return;
        }

        var now = _time.GetTimestamp();

        // Sent now, it leaves the position at the first message still pending in another room, or at itself.
        if (_active && !_waiting && now >= slot.NextAllowed)
        {
            if (_send(message, Position))
            {
                slot.NextAllowed = now + _interval;
                return;
            }

            // The connection has not sent what it holds yet: keep the value (newer ones replace it) until it has.
            WaitForRoom();
        }

        MakePending(slot, message, message.Seq);
        Schedule(slot, Math.Max(slot.NextAllowed, now));
    }

    /// <summary>The connection's queue is below its conflation mark again: sends the rooms that are due, oldest due first.</summary>
    public void Drained()
    {
        _waiting = false;
        Flush();
    }

    private void WaitForRoom()
    {
        _waiting = true;
        _waitForRoom();
    }

    private void MakePending(Slot slot, RoomMessage message, ulong firstUnsent)
    {
        slot.Pending = message;
        slot.FirstUnsent = firstUnsent;
        _unsent.Enqueue(slot, firstUnsent);
    }

    /// <summary>
    /// Marks <paramref name="room"/> as just sent (a latest value sent outside <see cref="Offer"/>): its next message
    /// waits for the interval like any other.
    /// </summary>
    public void Sent(string room)
    {
        if (!_slots.TryGetValue(room, out var slot))
        {
            slot = new Slot();
            _slots.Add(room, slot);
        }

        slot.NextAllowed = _time.GetTimestamp() + _interval;
    }

    /// <summary>The member is live: sends what became due while it was joining, and schedules the rest.</summary>
    public void Activate()
    {
        _active = true;
        Flush();
    }

    /// <summary>Sends every pending room whose interval has ended; re-arms the timer for the next one.</summary>
    private void Flush()
    {
        if (_disposed || !_active || _waiting)
        {
            return;
        }

        var now = _time.GetTimestamp();
        while (_due.TryPeek(out var slot, out var due) && due <= now)
        {
            _due.Dequeue();
            if (slot.Pending is not { } message || slot.Due != due)
            {
                continue; // sent or rescheduled since
            }

            // Sent, the room has nothing unsent: the position moves to the next room's first unsent message (or to
            // the newest offered).
            slot.Pending = null;
            if (_send(message, Position))
            {
                slot.NextAllowed = now + _interval;
                continue;
            }

            // The queue is above its mark: every other send would be refused too. Keep this one first in line (and
            // the others), and go on when the queue has drained.
            MakePending(slot, message, slot.FirstUnsent);
            slot.Due = due;
            _due.Enqueue(slot, due);
            WaitForRoom();
            break;
        }

        ArmTimer();
    }

    private void Schedule(Slot slot, long due)
    {
        slot.Due = due;
        _due.Enqueue(slot, due);
        if (_active && due < _timerDue)
        {
            ArmTimer();
        }
    }

    private void ArmTimer()
    {
        if (_waiting)
        {
            // Rooms due now wait for the queue, not the clock; the drain's flush re-arms it.
            _timerDue = long.MaxValue;
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            return;
        }

        long next = long.MaxValue;
        while (_due.TryPeek(out var slot, out var due))
        {
            if (slot.Pending is not null && slot.Due == due)
            {
                next = due;
                break;
            }

            _due.Dequeue();
        }

        if (next == long.MaxValue || _disposed)
        {
            _timerDue = long.MaxValue;
            _timer?.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
            return;
        }

        if (next == _timerDue)
        {
            return;
        }

        _timerDue = next;
        var wait = _time.GetElapsedTime(_time.GetTimestamp(), next);
        if (wait < TimeSpan.Zero)
        {
            wait = TimeSpan.Zero;
        }

        if (_timer is null)
        {
            _timer = _time.CreateTimer(static state => ((Conflater)state!).OnTimer(), this, wait, Timeout.InfiniteTimeSpan);
        }
        else
        {
            _timer.Change(wait, Timeout.InfiniteTimeSpan);
        }
    }

    private void OnTimer()
    {
        lock (_gate)
        {
            _timerDue = long.MaxValue;
            Flush();
        }
    }

    /// <summary>Stops sending: pending messages are dropped with the member.</summary>
    public void Dispose()
    {
        _disposed = true;
        _timer?.Dispose();
        _timer = null;
        _slots.Clear();
        _due.Clear();
        _unsent.Clear();
    }

    /// <summary>One room's conflation state for the member.</summary>
    private sealed class Slot
    {
        /// <summary>Clock timestamp from which the room may send again.</summary>
        public long NextAllowed;

        /// <summary>The newest message not sent yet, or null.</summary>
        public RoomMessage? Pending;

        /// <summary>The seq of the first message that became pending since the room last sent: the position stays below it.</summary>
        public ulong FirstUnsent;

        /// <summary>When the pending message is due (its entry in the due queue).</summary>
        public long Due;
    }
}
