using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;

namespace Bridge.Worker.Connections;

/// <summary>Where a member is: see <see cref="RoomMembership"/>.</summary>
internal enum MemberState
{
    /// <summary>Reading the room from the stream (joining with <c>since</c>, or fallen behind): live messages are ignored.</summary>
    Reading,

    /// <summary>Past the seam, reading the rest of the stream up to it: live messages after the seam are held (bounded).</summary>
    Holding,

    /// <summary>On the room's live dispatch.</summary>
    Live,

    /// <summary>Left (or the connection closed): nothing more is delivered.</summary>
    Closed,
}

/// <summary>
/// One connection's place in one room, and the one owner of its position there (the seq of the last message of
/// the room it was sent). A small state machine: a member reads the room from the stream (<see cref="MemberState.Reading"/>)
/// until it reaches the room's seam, holds the live messages after the seam while it reads the rest
/// (<see cref="MemberState.Holding"/>), then goes <see cref="MemberState.Live"/>. A live member whose send queue is at
/// its high-water mark does not take the message: it goes back to reading from its position, and the live dispatch
/// never waits for it nor keeps its frames. A hold that overflows (the member is still slower than the room) also
/// goes back to reading. Joining with <c>since</c> and catching up are the same path (<see cref="RoomReader"/>).
/// </summary>
internal sealed class RoomMembership(ClientSession session, string room, RoomReader reader) : IRoomMember
{
    private readonly Lock _gate = new();
    private MemberState _state;
    private List<RoomMessage>? _held;
    private long _heldBytes;
    private Room? _room;
    private bool _behind;
    private bool _answered;

    public ClientSession Session { get; } = session;

    public string RoomName { get; } = room;

    /// <summary>The room, once the join reached it.</summary>
    public Room? Room => Volatile.Read(ref _room);

    /// <summary>The seq of the last message of the room this connection was sent (or of its <c>room.joined</c>).</summary>
    public ulong Position { get; private set; }

    public MemberState State
    {
        get
        {
            lock (_gate)
            {
                return _state;
            }
        }
    }

    /// <summary>True until the join has answered <c>room.joined</c> (or the membership closed).</summary>
    public bool IsJoining
    {
        get
        {
            lock (_gate)
            {
                return !_answered && _state != MemberState.Closed;
            }
        }
    }

    public string ConnectionId => Session.ConnectionId;

    public string User => Session.User;

    /// <summary>Records the room the join reached; false when the membership was closed meanwhile (the caller then leaves the room).</summary>
    public bool Attach(Room room, ulong position)
    {
        lock (_gate)
        {
            if (_state == MemberState.Closed)
            {
                return false;
            }

            Position = position;
            Volatile.Write(ref _room, room);
            return true;
        }
    }

    public void Deliver(RoomMessage message)
    {
        // The lock orders a delivery against the seam, activation and close; uncontended except during those.
        lock (_gate)
        {
            switch (_state)
            {
                case MemberState.Live:
                    // The position only moves forward: a message at or below it (re-dispatched by a gap fill) is
                    // never sent twice.
                    if (message.Seq <= Position)
                    {
                        return;
                    }

                    if (Session.TryDeliver(message))
                    {
                        Position = message.Seq;
                        return;
                    }

                    if (Session.CloseRequested is not null)
                    {
                        return; // closing: its queue takes nothing more, and it is about to leave
                    }

                    // The queue is at its high-water mark: this message and the next ones are read from the stream.
                    _state = MemberState.Reading;
                    SetBehind();
                    break;
                case MemberState.Holding:
                    Hold(message);
                    return;
                default:
                    return;
            }
        }

        reader.StartCatchUp(this);
    }

    private void Hold(RoomMessage message)
    {
        if (_held!.Count >= reader.HoldCapacity || _heldBytes >= reader.HoldBytes)
        {
            // Still slower than the room: drop the hold and read again (the stream has all of it).
            _state = MemberState.Reading;
            _held = null;
            _heldBytes = 0;
            return;
        }

        _held.Add(message);
        _heldBytes += message.Payload.Length;
    }

    public void Hold()
    {
        lock (_gate)
        {
            if (_state == MemberState.Reading)
            {
                _state = MemberState.Holding;
                _held = [];
                _heldBytes = 0;
            }
        }
    }

    /// <summary>Queues a message read from the stream; advances the position when it was queued.</summary>
    public ReadResult DeliverRead(RoomMessage message)
    {
        lock (_gate)
        {
            if (_state == MemberState.Closed)
            {
                return ReadResult.Closed;
            }

            if (message.Seq <= Position)
            {
                return ReadResult.Sent;
            }

            if (!Session.TryDeliver(message))
            {
                return ReadResult.Full;
            }

            Position = message.Seq;
            return ReadResult.Sent;
        }
    }

    /// <summary>Moves the position past messages the stream no longer holds (retention dropped them before they were read).</summary>
    public void SkipTo(ulong position)
    {
        lock (_gate)
        {
            if (_state != MemberState.Closed && position > Position)
            {
                Position = position;
            }
        }
    }

    /// <summary>Queues a control frame for this room (e.g. a truncation notice) unless the membership is closed.</summary>
    public bool Send(ControlFrame frame)
    {
        lock (_gate)
        {
            if (_state == MemberState.Closed)
            {
                return false;
            }

            Session.Send(frame);
            return true;
        }
    }

    /// <summary>A join of a room the connection is already in: answers <c>room.joined</c> with the current position, once the first join has answered.</summary>
    public void AnswerAgain()
    {
        lock (_gate)
        {
            if (_answered && _state != MemberState.Closed)
            {
                Session.Send(ControlFrames.RoomJoined(RoomName, Position, 0, false));
            }
        }
    }

    /// <summary>
    /// After reading up to the seam: sets the position to <paramref name="position"/> (never below what was sent), sends <paramref name="joined"/>
    /// (when joining), then the held messages after the position, and goes live. False when the member is not live
    /// after all: closed, or still behind (the hold overflowed, or the queue filled while it was flushed); it then
    /// reads again from its position.
    /// </summary>
    public bool Activate(ControlFrame? joined, ulong position)
    {
        lock (_gate)
        {
            if (_state == MemberState.Closed)
            {
                return false;
            }

            Position = position;
            if (joined is not null)
            {
                Session.Send(joined);
                _answered = true;
            }

            if (_state != MemberState.Holding)
            {
                SetBehind();
                return false;
            }

            foreach (var message in _held!)
            {
                if (message.Seq <= Position)
                {
                    continue;
                }

                if (!Session.TryDeliver(message))
                {
                    _state = MemberState.Reading;
                    _held = null;
                    SetBehind();
                    return false;
                }

                Position = message.Seq;
            }

            _held = null;
            _state = MemberState.Live;
            if (_behind)
            {
                _behind = false;
                reader.CaughtUp(this);
            }

            return true;
        }
    }

    /// <summary>
    /// Stops delivery for good; returns the room to leave, once (null when the join never reached one, or when
    /// another caller already took it).
    /// </summary>
    public Room? Close()
    {
        lock (_gate)
        {
            if (_state == MemberState.Closed)
            {
                return null;
            }

            _state = MemberState.Closed;
            _held = null;
            if (_behind)
            {
                _behind = false;
                reader.CaughtUp(this);
            }

            return Volatile.Read(ref _room);
        }
    }

    private void SetBehind()
    {
        if (!_behind)
        {
            _behind = true;
            reader.FellBehind(this);
        }
    }
}

/// <summary>What became of a message read from the stream for a member.</summary>
internal enum ReadResult
{
    Sent,

    /// <summary>The queue is at its high-water mark: wait for headroom and read it again.</summary>
    Full,

    Closed,
}
