namespace Bridge.Worker.Rooms;

/// <summary>
/// The registry's rooms by name (not thread-safe: <see cref="RoomRegistry"/> holds its lock around every call). A set of
/// rooms keyed by their own <see cref="Room.Name"/> (an entry is 16 B: no key beside the room), split by the name's hash
/// into <see cref="Shards"/> sets so that no table array reaches the large-object heap below ~300,000 rooms: one table
/// of 100,000 rooms grew through arrays of 2, 4 and 8 MB there, and each outgrown one stayed in the worker's memory
/// until the next full GC (~45 B per active room at 100,000 rooms, docs/benchmarks.md, memory per room, seventh pass).
/// </summary>
internal sealed class RoomTable
{
    /// <summary>
    /// Sets per table: a set's entry array stays below the large-object threshold (85,000 B: ~5,300 entries of 16 B)
    /// while it holds up to 4,049 rooms (its capacities go 1,931, 4,049 (65 KB), then 8,419 (135 KB)), i.e. ~300,000 rooms
    /// in all with room to spare for an uneven spread (2,344 per set on average at 300,000).
    /// </summary>
    internal const int Shards = 128;

    private readonly HashSet<Room>[] _shards = new HashSet<Room>[Shards];
    private int _count;

    public RoomTable()
    {
        for (var i = 0; i < _shards.Length; i++)
        {
            _shards[i] = new HashSet<Room>(ByName.Instance);
        }
    }

    public int Count => _count;

    /// <summary>The room named <paramref name="name"/>, if active.</summary>
    public bool TryGetValue(string name, out Room room)
    {
        var hash = Hash(name);
        if (ShardOf(hash).GetAlternateLookup<string>().TryGetValue(name, out var found))
        {
            room = found;
            return true;
        }

        room = null!;
        return false;
    }

    /// <summary>Adds <paramref name="room"/>; its name must not be in the table.</summary>
    public void Add(Room room)
    {
        if (!ShardOf(Hash(room.Name)).Add(room))
        {
            throw new InvalidOperationException($"room '{room.Name}' is already in the table");
        }

        _count++;
    }

    /// <summary>Removes <paramref name="room"/> itself (not another room of its name); false when it is not in.</summary>
    public bool Remove(Room room)
    {
        var shard = ShardOf(Hash(room.Name));
        if (!shard.TryGetValue(room, out var current) || !ReferenceEquals(current, room))
        {
            return false;
        }

        shard.Remove(room);
        _count--;
        return true;
    }

    /// <summary>Every room in the table.</summary>
    public Room[] ToArray()
    {
        var rooms = new Room[_count];
        var i = 0;
        foreach (var shard in _shards)
        {
            shard.CopyTo(rooms, i);
            i += shard.Count;
        }

        return rooms;
    }

    /// <summary>The most rooms one set holds (for tests: how evenly the names spread).</summary>
    internal int LargestShard => _shards.Max(static s => s.Count);

    public void Clear()
    {
        foreach (var shard in _shards)
        {
            shard.Clear();
        }

        _count = 0;
    }

    private static int Hash(string name) => string.GetHashCode(name, StringComparison.Ordinal);

    // The hash's top bits: each set places its rooms by the hash modulo its (prime) size.
    private HashSet<Room> ShardOf(int hash) => _shards[(uint)hash >> 25];

    /// <summary>Rooms are equal when their names are (ordinal), and a name finds its room.</summary>
    private sealed class ByName : IEqualityComparer<Room>, IAlternateEqualityComparer<string, Room>
    {
        public static readonly ByName Instance = new();

        public bool Equals(Room? x, Room? y) => string.Equals(x?.Name, y?.Name, StringComparison.Ordinal);

        public int GetHashCode(Room obj) => Hash(obj.Name);

        public bool Equals(string alternate, Room other) => string.Equals(alternate, other.Name, StringComparison.Ordinal);

        public int GetHashCode(string alternate) => Hash(alternate);

        // Only lookups go by name: a room is added as itself.
        public Room Create(string alternate) => throw new NotSupportedException("rooms are added as themselves");
    }
}
