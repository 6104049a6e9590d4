namespace Bridge.Worker.Rooms;

/// <summary>
/// The rooms active on this worker. A room is active while at least one local connection is in it: its feed
/// opens on the first join and closes on the last leave. A room pattern joined is active the same way, under its
/// pattern's text (one subscription with its wildcards). Every join and leave of a room's member is told to the
/// <see cref="IRoomObserver"/>s (presence is one; it ignores rooms without it); a pattern's members take no part.
/// </summary>
internal sealed class RoomRegistry : IAsyncDisposable
{
    // A plain dictionary under its own lock, not a ConcurrentDictionary: an entry is 24 B in its array instead of a 48 B
    // node and a bucket (~40 B less per active room); a join or leave holds the lock for one lookup.
    private readonly Dictionary<string, Room> _rooms = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private readonly IRoomFeedFactory _feeds;
    private readonly IRoomObserver[] _observers;
    private readonly RoomServices _services;

    public RoomRegistry(IRoomFeedFactory feeds, IRoomLog log, Operations.BridgeMetrics metrics, ILogger<RoomSequence> logger, IEnumerable<IRoomObserver> observers)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _feeds = feeds;
        _observers = [.. observers];
        _services = new RoomServices(this, log, metrics, logger, feeds.BacklogCapacity, feeds);
        metrics.ObserveActiveRooms(() => ActiveRooms);
    }

    public int ActiveRooms
    {
        get
        {
            lock (_gate)
            {
                return _rooms.Count;
            }
        }
    }

    /// <summary>A snapshot of the active rooms.</summary>
    public IReadOnlyCollection<Room> Snapshot()
    {
        lock (_gate)
        {
            return [.. _rooms.Values];
        }
    }

    /// <summary>
    /// Adds <paramref name="member"/> to the room, returning once the room's live feed is open: at once (no state
    /// machine) when it already is and nobody observes the join.
    /// </summary>
    public ValueTask<Room> JoinAsync(string name, IRoomMember member, CancellationToken cancellationToken)
    {
        while (true)
        {
            var room = GetOrAdd(name);
            if (!room.TryAdd(member))
            {
                // Its last member left a moment ago; drop the closed instance and take a fresh one.
                TryRemove(room);
                continue;
            }

            var opening = room.OpenFeed(_feeds);
            return opening is null && (room.Pattern is not null || _observers.Length == 0)
                ? new ValueTask<Room>(room)
                : JoinedAsync(room, member, opening, cancellationToken);
        }
    }

    /// <summary>The rest of <see cref="JoinAsync"/>: awaits the feed's <paramref name="opening"/> (null: open), then tells the observers.</summary>
    // Pooled like the join that awaits it (RoomJoiner.JoinAsync).
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Room> JoinedAsync(Room room, IRoomMember member, Task<IAsyncDisposable>? opening, CancellationToken cancellationToken)
    {
        if (opening is not null)
        {
            try
            {
                room.FeedOpened(opening, await opening.WaitAsync(cancellationToken));
            }
            catch
            {
                await RemoveAsync(room, member);
                throw;
            }
        }

        foreach (var observer in room.Pattern is null ? _observers : [])
        {
            await observer.JoinedAsync(room.Name, member.User);
        }

        return room;
    }

    public async ValueTask LeaveAsync(Room room, IRoomMember member)
    {
        await RemoveAsync(room, member);
        foreach (var observer in room.Pattern is null ? _observers : [])
        {
            await observer.LeftAsync(room.Name, member.User);
        }
    }

    private async ValueTask RemoveAsync(Room room, IRoomMember member)
    {
        if (room.Remove(member))
        {
            TryRemove(room);
            await room.CloseFeedAsync();
        }
    }

    private Room GetOrAdd(string name)
    {
        lock (_gate)
        {
            if (!_rooms.TryGetValue(name, out var room))
            {
                room = new Room(name, _services);
                _rooms.Add(name, room);
            }

            return room;
        }
    }

    /// <summary>Removes <paramref name="room"/>, unless its name is already another (fresh) room's.</summary>
    private void TryRemove(Room room)
    {
        lock (_gate)
        {
            if (_rooms.TryGetValue(room.Name, out var current) && ReferenceEquals(current, room))
            {
                _rooms.Remove(room.Name);
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var room in Snapshot())
        {
            await room.CloseFeedAsync();
        }

        lock (_gate)
        {
            _rooms.Clear();
        }
    }
}
