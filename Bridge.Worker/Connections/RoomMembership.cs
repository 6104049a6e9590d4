using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;

namespace Bridge.Worker.Connections;

/// <summary>
/// One connection's place in one room: the member the room fans out to. While the join is in progress,
/// live messages are held back (bounded) so that <c>room.joined</c> always precedes them; after a leave,
/// nothing more is delivered, even by a fan-out already under way.
/// </summary>
internal sealed class RoomMembership(ClientSession session, string room, int maxPending) : IRoomMember
{
    private readonly Lock _gate = new();
    private List<RoomMessage>? _pending = [];
    private bool _closed;

    public ClientSession Session { get; } = session;

    public string RoomName { get; } = room;

    private Room? _room;

    /// <summary>The room, once the join reached it.</summary>
    public Room? Room
    {
        get => Volatile.Read(ref _room);
        set => Volatile.Write(ref _room, value);
    }

    /// <summary>The connection's position in the room once live: the seq of the last message it was sent (or of <c>room.joined</c>).</summary>
    public ulong Position { get; private set; }

    public bool IsLive
    {
        get
        {
            lock (_gate)
            {
                return !_closed && _pending is null;
            }
        }
    }

    public bool IsClosed
    {
        get
        {
            lock (_gate)
            {
                return _closed;
            }
        }
    }

    public string ConnectionId => Session.ConnectionId;

    public string User => Session.User;

    public void Deliver(RoomMessage message)
    {
        // The lock orders a delivery against Activate/Close; it is uncontended except during those.
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            if (_pending is null)
            {
                // Once live, the position only moves forward: a message at or below it (already replayed, or
                // re-dispatched by a gap fill the replay had already covered) is never sent twice.
                if (message.Seq <= Position)
                {
                    return;
                }

                Position = message.Seq;
                Session.Deliver(message);
                return;
            }

            if (_pending.Count >= maxPending)
            {
                _closed = true;
                _pending = null;
                Session.RequestClose(Bridge.Contracts.CloseCodes.SlowConsumer, "slow consumer: too many messages while joining");
                return;
            }

            _pending.Add(message);
        }
    }

    /// <summary>Sends a message read from the stream during the join; false once the membership is closed.</summary>
    public bool DeliverReplayed(RoomMessage message)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return false;
            }

            Session.Deliver(message);
            return true;
        }
    }

    /// <summary>Sends <paramref name="joined"/>, then the messages held back while joining (those after <paramref name="afterSeq"/>), then goes live.</summary>
    public void Activate(ControlFrame joined, ulong afterSeq)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return;
            }

            Position = afterSeq;
            Session.Send(joined);
            foreach (var message in _pending!)
            {
                if (message.Seq > Position)
                {
                    Position = message.Seq;
                    Session.Deliver(message);
                }
            }

            _pending = null;
        }
    }

    /// <summary>Stops delivery for good; returns once no fan-out can deliver to this membership any more.</summary>
    public void Close()
    {
        lock (_gate)
        {
            _closed = true;
            _pending = null;
        }
    }
}
