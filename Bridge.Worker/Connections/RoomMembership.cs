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
/// One connection's place in one room (or room pattern), and the one owner of its position there (the seq of the last
/// message of the room it was sent; for a pattern, of any of its rooms). A small state machine: a member reads the room
/// from the stream (<see cref="MemberState.Reading"/>) until it reaches the room's seam, holds the live messages after the
/// seam while it reads the rest (<see cref="MemberState.Holding"/>), then goes <see cref="MemberState.Live"/>. A live
/// member whose send queue is at its high-water mark does not take the message: it goes back to reading from its
/// position, and the live dispatch never waits for it nor keeps its frames. A hold that overflows (the member is still
/// slower than the room) also goes back to reading. Joining with <c>since</c> and catching up are the same path
/// (<see cref="RoomReader"/>).
/// </summary>
/// <remarks>
/// <para>
/// A member joined with <c>maxRate</c> is conflated instead: from its seam on, the room's <see cref="ConflationGroup"/>
/// of its rate chooses its values (the newest per room, at most that rate, for every member of that rate at once) and
/// hands them to its <see cref="ConflatedMember"/>; it never falls behind and never reads the stream, and is not on the
/// room's unconflated fan-out.
/// </para>
/// <para>
/// Overlapping joins of one connection (a room and a pattern matching it, or two patterns that share rooms) share an
/// <see cref="OverlapGroup"/>: a message is sent once, by whichever member reaches it first. Each member has processed
/// every message of its rooms in (<see cref="Start"/>, <see cref="Position"/>]: sent it, or skipped it because another
/// had sent it. So a member skips a message when another (unconflated) member of the group has it in that range, the
/// check and the send taken under the group's lock.
/// </para>
/// </remarks>
internal sealed class RoomMembership : IRoomMember
{
    private MemberState _state;
    // Only while holding (the seam to live): the held messages, their bytes and the gap notice's seq.
    private HeldMessages? _held;
    private Room? _room;
    private bool _behind;
    private bool _answered;
    // A live join (no since) until its seam is taken or it closes: the connection's publishes to its room wait
    // (SessionRooms.WhenSeamTakenAsync). In the padding after the other flags: no bytes per active room.
    private bool _seamPending;
    private ulong _position;
    private ulong _start = ulong.MaxValue;
    private OverlapGroup? _overlaps;

    // What only some joins have: options, a pattern, conflation. Null for a plain join of one room (most of them, when a
    // worker holds many rooms): kept inline they cost 56 B per active room.
    private readonly JoinExtras? _extras;

    public RoomMembership(ClientSession session, string room, JoinOptions options = default)
    {
        Session = session;
        RoomName = room;
        var pattern = Contracts.RoomName.IsPattern(room) && Security.RoomPattern.TryParse(room, out var parsed) ? parsed : null;
        var conflater = options.MaxRate is { } rate ? Conflater(rate) : null;
        _extras = options == default && pattern is null ? null : new JoinExtras(options, pattern, conflater);
    }

    /// <summary>A <c>maxRate</c> member's conflation (its own method: its closure is allocated only for such a member).</summary>
    private ConflatedMember Conflater(double rate)
    {
        var session = Session;
        session.UseConflatedSendBuffer();
        Action drained = OnQueueDrained;
        return new ConflatedMember(rate, Reader.Time, Gate, SendConflated, () => session.Queue.WhenDrained(drained));
    }

    /// <summary>
    /// The member's lock: its own monitor (a thin lock in its object header, no lock object per member: 40 B less per
    /// active room). Nothing else locks a membership.
    /// </summary>
    private object Gate => this;

    /// <summary>The worker's room reader, kept by the connection (<see cref="SessionRooms.Reader"/>), not by each membership.</summary>
    private RoomReader Reader => Session.Rooms.Reader;

    /// <summary>The connection's queue took what it held: a conflated member sends its rooms that are due.</summary>
    private void OnQueueDrained()
    {
        lock (Gate)
        {
            if (_state != MemberState.Closed)
            {
                Conflation!.Drained();
            }
        }
    }

    public ClientSession Session { get; }

    /// <summary>The room, or the pattern, joined.</summary>
    public string RoomName { get; }

    /// <summary>The pattern, when a pattern was joined; null for a room.</summary>
    public Security.RoomPattern? Pattern => _extras?.Pattern;

    /// <summary>What the join asked for besides its room.</summary>
    public JoinOptions Options => _extras?.Options ?? default;

    /// <summary>True for a <c>maxRate</c> join.</summary>
    public bool IsConflated => Conflation is not null;

    /// <summary>This member's side of conflation, for a <c>maxRate</c> join; null otherwise.</summary>
    public ConflatedMember? Conflation => _extras?.Conflater;

    /// <summary>The room, once the join reached it.</summary>
    public Room? Room => Volatile.Read(ref _room);

    /// <summary>
    /// The seq of the last message of the room this connection was sent (or of its <c>room.joined</c>). A conflated
    /// member's: every message up to it was sent or replaced by a newer one of its room that was (<see cref="ConflatedMember.Position"/>).
    /// </summary>
    public ulong Position
    {
        get
        {
            lock (Gate)
            {
                return CurrentPosition;
            }
        }
    }

    private ulong CurrentPosition => Conflation is { } c ? Math.Max(_position, c.Position) : _position;

    /// <summary>
    /// Below the first message this member processes: its <c>since</c>, or its position when it went live without one
    /// (nothing before it is its to send). Read by its <see cref="OverlapGroup"/> under the group's lock.
    /// </summary>
    internal ulong Start => _start;

    /// <summary>The last seq processed, read by its <see cref="OverlapGroup"/> under the group's lock.</summary>
    internal ulong ProcessedUpTo => _position;

    /// <summary>True when <paramref name="room"/> is (one of) this member's room(s).</summary>
    public bool Covers(string room) => Pattern?.Matches(room) ?? string.Equals(room, RoomName, StringComparison.Ordinal);

    /// <summary>True when some room is both this member's and <paramref name="other"/>'s.</summary>
    public bool Overlaps(RoomMembership other) =>
        (Pattern, other.Pattern) switch
        {
            (null, null) => string.Equals(RoomName, other.RoomName, StringComparison.Ordinal),
            (null, { } theirs) => theirs.Matches(RoomName),
            ({ } mine, null) => mine.Matches(other.RoomName),
            ({ } mine, { } theirs) => mine.Overlaps(theirs),
        };

    /// <summary>Puts this member in <paramref name="group"/> (another member of the connection overlaps it).</summary>
    internal void JoinGroup(OverlapGroup group)
    {
        lock (Gate)
        {
            lock (group.Gate)
            {
                _overlaps = group;
                group.Add(this);
            }
        }
    }

    public MemberState State
    {
        get
        {
            lock (Gate)
            {
                return _state;
            }
        }
    }

    /// <summary>
    /// Called once it is in its connection's rooms: true when the connection's publishes to this room are to wait for the
    /// join's seam (<see cref="SessionRooms.WhenSeamTakenAsync"/>). Only a live join's: a message stored before the seam
    /// of a join with <c>since</c> is read and replayed, so its publishes need not wait (nor wait behind its replay). Not
    /// a pattern's either: a publish goes to a room, and waits only for that room's own join.
    /// </summary>
    internal bool AwaitSeam()
    {
        lock (Gate)
        {
            _seamPending = Options.Since is null && Pattern is null && _state != MemberState.Closed;
            return _seamPending;
        }
    }

    /// <summary>
    /// Under the lock, at the seam (every later message of the room is this member's) or at the close: lets the connection's
    /// publishes to the room go, once.
    /// </summary>
    private void SeamReached()
    {
        if (_seamPending)
        {
            _seamPending = false;
            Session.Rooms.SeamReached();
        }
    }

    /// <summary>True while the connection's publishes to this room wait for the join's seam (<see cref="AwaitSeam"/>).</summary>
    internal bool SeamPending
    {
        get
        {
            lock (Gate)
            {
                return _seamPending;
            }
        }
    }

    /// <summary>True until the join has answered <c>room.joined</c> (or the membership closed).</summary>
    public bool IsJoining
    {
        get
        {
            lock (Gate)
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
        lock (Gate)
        {
            if (_state == MemberState.Closed)
            {
                return false;
            }

            SetPosition(position);
            if (Options.Since is { } since && !IsConflated)
            {
                SetStart(since); // a resume processes what follows since
            }

            Volatile.Write(ref _room, room);
            return true;
        }
    }

    public void Deliver(RoomMessage message) => Deliver(message, afterGap: false);

    public void DeliverAfterGap(RoomMessage message) => Deliver(message, afterGap: true);

    private void Deliver(RoomMessage message, bool afterGap)
    {
        // The lock orders a delivery against the seam, activation and close; uncontended except during those. It also
        // keeps a gap's notice next to its message: a poll checks IsJoining (this lock) before it answers.
        lock (Gate)
        {
            if (Conflation is not null)
            {
                return; // not on the room's fan-out: its group hands it its values
            }

            switch (_state)
            {
                case MemberState.Live:
                    // The position only moves forward: a message at or below it (re-dispatched by a gap fill) is
                    // never sent twice.
                    if (message.Seq <= _position)
                    {
                        return;
                    }

                    if (TrySend(message))
                    {
                        if (afterGap)
                        {
                            Session.Send(TruncatedNotice());
                        }

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
                    Hold(message, afterGap);
                    return;
                default:
                    return;
            }
        }

        Reader.StartCatchUp(this);
    }

    /// <summary>
    /// Called under the lock: queues <paramref name="message"/> and moves the position to it; false when the queue has no
    /// room. A message another member of an overlapping join already sent is not sent again (it counts as sent).
    /// </summary>
    private bool TrySend(RoomMessage message, bool replayed = false)
    {
        if (_overlaps is not { } group)
        {
            if (!Session.TryDeliver(message, RoomName, message.Seq, replayed))
            {
                return false;
            }

            _position = message.Seq;
            return true;
        }

        lock (group.Gate)
        {
            if (!group.SentByAnother(this, message) && !Session.TryDeliver(message, RoomName, message.Seq, replayed))
            {
                return false;
            }

            _position = message.Seq;
            return true;
        }
    }

    /// <summary>The conflated member's send (called under the lock): the frame carries the member's position once it is sent.</summary>
    private bool SendConflated(RoomMessage message, ulong position)
    {
        position = Math.Max(_position, position);
        if (_overlaps is not { } group)
        {
            return Session.TryDeliverConflated(message, RoomName, position);
        }

        lock (group.Gate)
        {
            return group.SentByAnother(this, message) || Session.TryDeliverConflated(message, RoomName, position);
        }
    }

    private void SetPosition(ulong position)
    {
        if (_overlaps is not { } group)
        {
            _position = position;
            return;
        }

        lock (group.Gate)
        {
            _position = position;
        }
    }

    private void SetStart(ulong start)
    {
        if (_overlaps is not { } group)
        {
            _start = start;
            return;
        }

        lock (group.Gate)
        {
            _start = start;
        }
    }

    private void Hold(RoomMessage message, bool afterGap)
    {
        var held = _held!;
        if (held.Count >= Reader.HoldCapacity || held.Bytes >= Reader.HoldBytes)
        {
            // Still slower than the room: drop the hold and read again (the stream has all of it, and its reads find
            // any hole retention made after this member's position).
            _state = MemberState.Reading;
            _held = null;
            return;
        }

        held.Add(message);
        held.Bytes += message.Payload.Length;
        if (afterGap)
        {
            held.GapNotice = message.Seq;
        }
    }

    public void Hold()
    {
        lock (Gate)
        {
            SeamReached();
            if (_state == MemberState.Reading)
            {
                _state = MemberState.Holding;
                _held = new HeldMessages();
            }
        }
    }

    /// <summary>
    /// Queues messages read from the stream (in seq order), advancing the position past each one queued; those at or
    /// before the position were sent already. A member alone in its connection queues them in one step
    /// (<see cref="ClientSession.TryDeliverRead"/>). <paramref name="taken"/> is how many of the first messages are
    /// done (sent, or sent already); the result says why the rest are not (<see cref="ReadResult.Full"/>: read them again
    /// once there is headroom). <paramref name="replayed"/>: read for a join, before its <c>room.joined</c>
    /// (<see cref="OutboundFrame.Replayed"/>).
    /// </summary>
    public ReadResult DeliverRead(ReadOnlySpan<RoomMessage> messages, bool replayed, out int taken)
    {
        lock (Gate)
        {
            taken = 0;
            if (_state == MemberState.Closed)
            {
                return ReadResult.Closed;
            }

            while (taken < messages.Length && messages[taken].Seq <= _position)
            {
                taken++;
            }

            if (_overlaps is not null)
            {
                // Patterns overlapping in this connection decide per message who sends it.
                for (; taken < messages.Length; taken++)
                {
                    if (!TrySend(messages[taken], replayed))
                    {
                        return ReadResult.Full;
                    }
                }

                return ReadResult.Sent;
            }

            var rest = messages[taken..];
            var done = Session.TryDeliverRead(rest, RoomName, replayed);
            if (done > 0)
            {
                _position = rest[done - 1].Seq;
            }

            taken += done;
            return done == rest.Length ? ReadResult.Sent : ReadResult.Full;
        }
    }

    /// <summary>
    /// Queues the last stored message of one of the member's rooms (a join with <c>latest</c>), before its
    /// <c>room.joined</c>: no position moves (the join's position is its seam, after every such message).
    /// </summary>
    public ReadResult DeliverLatest(RoomMessage message)
    {
        lock (Gate)
        {
            if (_state == MemberState.Closed)
            {
                return ReadResult.Closed;
            }

            bool sent;
            if (_overlaps is { } group)
            {
                lock (group.Gate)
                {
                    sent = group.SentByAnother(this, message) || Session.TryDeliver(message, null, 0, replayed: true);
                }
            }
            else
            {
                sent = Session.TryDeliver(message, null, 0, replayed: true);
            }

            if (sent)
            {
                Conflation?.Sent(message.Room, message.Seq);
            }

            return sent ? ReadResult.Sent : ReadResult.Full;
        }
    }

    /// <summary>Moves the position past messages the stream no longer holds (retention dropped them before they were read).</summary>
    public void SkipTo(ulong position)
    {
        lock (Gate)
        {
            if (_state != MemberState.Closed && position > _position)
            {
                SetPosition(position);
            }
        }
    }

    /// <summary>
    /// Tells the client that retention may have dropped messages of the room it was never sent: <c>room.joined</c> with
    /// <c>truncated</c> at its position, as a resume from a dropped position says (docs/protocol.md §5). Sent after the
    /// first messages kept after the hole (a long-poll's join: before them, <c>RoomReader.ReportGap</c>), unless the
    /// membership is closed.
    /// </summary>
    public bool SendTruncated()
    {
        lock (Gate)
        {
            if (_state == MemberState.Closed)
            {
                return false;
            }

            Session.Send(TruncatedNotice());
            return true;
        }
    }

    private ControlFrame TruncatedNotice() => ControlFrames.RoomJoined(RoomName, CurrentPosition, 0, truncated: true);

    /// <summary>Queues a control frame for this room unless the membership is closed.</summary>
    public bool Send(ControlFrame frame)
    {
        lock (Gate)
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
        lock (Gate)
        {
            if (_answered && _state != MemberState.Closed)
            {
                Session.Send(ControlFrames.RoomJoined(RoomName, CurrentPosition, 0, false));
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
        lock (Gate)
        {
            if (_state == MemberState.Closed)
            {
                return false;
            }

            SetPosition(position);
            if (_start == ulong.MaxValue)
            {
                SetStart(position); // joined live: what follows the seam is this member's
            }

            if (joined is not null)
            {
                Session.Send(joined);
                _answered = true;
            }

            if (Conflation is { } conflater)
            {
                // What it was handed while joining is owed: each room's newest is sent now, then live. Never behind.
                _state = MemberState.Live;
                conflater.Activate();
                return true;
            }

            if (_state != MemberState.Holding)
            {
                SetBehind();
                return false;
            }

            var held = _held!;
            for (var i = 0; i < held.Count; i++)
            {
                var message = held[i];
                if (message.Seq <= _position)
                {
                    continue;
                }

                if (!TrySend(message))
                {
                    _state = MemberState.Reading;
                    _held = null;
                    SetBehind();
                    return false;
                }

                if (message.Seq == held.GapNotice)
                {
                    Session.Send(TruncatedNotice());
                }
            }

            _held = null;
            _state = MemberState.Live;
            if (_behind)
            {
                _behind = false;
                Reader.CaughtUp(this);
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
        lock (Gate)
        {
            if (_state == MemberState.Closed)
            {
                return null;
            }

            _state = MemberState.Closed;
            _held = null;
            SeamReached();
            Conflation?.Dispose();
            if (_overlaps is { } group)
            {
                lock (group.Gate)
                {
                    group.Remove(this);
                }
            }

            if (_behind)
            {
                _behind = false;
                Reader.CaughtUp(this);
            }

            return Volatile.Read(ref _room);
        }
    }

    private void SetBehind()
    {
        if (!_behind)
        {
            _behind = true;
            Reader.FellBehind(this);
        }
    }

    /// <summary>A join's options, its pattern (a pattern joined) and its conflation (a <c>maxRate</c> join).</summary>
    private sealed record JoinExtras(JoinOptions Options, Security.RoomPattern? Pattern, ConflatedMember? Conflater);

    /// <summary>
    /// A holding member's messages after its seam and their payload bytes (both bounded), and the seq of the last one
    /// that came after a hole retention made in the live feed (room.joined truncated follows it).
    /// </summary>
    private sealed class HeldMessages
    {
        // Created by the first message held: most holds (a live join's, from its seam to room.joined) hold none.
        private List<RoomMessage>? _messages;

        public int Count => _messages?.Count ?? 0;

        public RoomMessage this[int index] => _messages![index];

        public long Bytes { get; set; }

        public ulong GapNotice { get; set; }

        public void Add(RoomMessage message) => (_messages ??= []).Add(message);
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
