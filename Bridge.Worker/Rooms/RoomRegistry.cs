using System.Collections.Concurrent;

namespace Bridge.Worker.Rooms;

/// <summary>
/// The rooms active on this worker. A room is active while at least one local connection is in it: its feed
/// opens on the first join and closes on the last leave. A room pattern joined is active the same way, under its
/// pattern's text (one subscription with its wildcards). Every join and leave of a room's member is told to the
/// <see cref="IRoomObserver"/>s (presence is one; it ignores rooms without it); a pattern's members take no part.
/// </summary>
internal sealed class RoomRegistry : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, Room> _rooms = new(StringComparer.Ordinal);
    private readonly IRoomFeedFactory _feeds;
    private readonly IRoomObserver[] _observers;
    private readonly RoomServices _services;

    public RoomRegistry(IRoomFeedFactory feeds, IRoomLog log, Operations.BridgeMetrics metrics, ILogger<RoomSequence> logger, IEnumerable<IRoomObserver> observers)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _feeds = feeds;
        _observers = [.. observers];
        _services = new RoomServices(this, log, metrics, logger, feeds.BacklogCapacity);
        metrics.ObserveActiveRooms(() => _rooms.Count);
    }

    public int ActiveRooms => _rooms.Count;

    /// <summary>A snapshot of the active rooms.</summary>
    public IReadOnlyCollection<Room> Snapshot() => [.. _rooms.Values];

    /// <summary>Adds <paramref name="member"/> to the room, returning once the room's live feed is open.</summary>
    public async ValueTask<Room> JoinAsync(string name, IRoomMember member, CancellationToken cancellationToken)
    {
        while (true)
        {
            var room = _rooms.GetOrAdd(name, static (n, services) => new Room(n, services), _services);
            if (!room.TryAdd(member))
            {
                // Its last member left a moment ago; drop the closed instance and take a fresh one.
                _rooms.TryRemove(new KeyValuePair<string, Room>(name, room));
                continue;
            }

            try
            {
                await room.EnsureFeedAsync(_feeds, cancellationToken);
            }
            catch
            {
                await RemoveAsync(room, member);
                throw;
            }

            foreach (var observer in room.Pattern is null ? _observers : [])
            {
                await observer.JoinedAsync(name, member.User);
            }

            return room;
        }
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
            _rooms.TryRemove(new KeyValuePair<string, Room>(room.Name, room));
            await room.CloseFeedAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var room in _rooms.Values)
        {
            await room.CloseFeedAsync();
        }

        _rooms.Clear();
    }
}
