using Bridge.Worker.Rooms;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.Tests.Unit;

/// <summary>
/// The registry's table of active rooms (<see cref="RoomTable"/>): rooms found by name, one room per name, a room
/// removed only as itself, and the rooms spread over its sets so that none grows onto the large-object heap.
/// </summary>
public sealed class RoomTableTests
{
    private readonly RoomServices _services = new(null!, null!, null!, NullLogger.Instance);

    [Fact]
    public void A_name_finds_its_room_and_only_that_room_is_removed()
    {
        var table = new RoomTable();
        var a = new Room("bench.r1", _services);
        var b = new Room("bench.r2", _services);
        table.Add(a);
        table.Add(b);

        Assert.True(table.TryGetValue(new string("bench.r1".AsSpan()), out var found)); // another instance of the name
        Assert.Same(a, found);
        Assert.False(table.TryGetValue("bench.r3", out _));
        Assert.Throws<InvalidOperationException>(() => table.Add(new Room("bench.r1", _services)));
        Assert.Equal(2, table.Count);

        // A closed room whose name is already a fresh room's leaves the fresh one in place.
        Assert.True(table.Remove(a));
        var fresh = new Room("bench.r1", _services);
        table.Add(fresh);
        Assert.False(table.Remove(a));
        Assert.True(table.TryGetValue("bench.r1", out found));
        Assert.Same(fresh, found);

        Assert.Equal([fresh, b], table.ToArray().OrderBy(r => r.Name, StringComparer.Ordinal));
        table.Clear();
        Assert.Equal(0, table.Count);
        Assert.Empty(table.ToArray());
        Assert.False(table.TryGetValue("bench.r2", out _));
    }

    [Fact]
    public void Rooms_spread_so_no_set_outgrows_the_size_that_keeps_it_off_the_large_object_heap()
    {
        // A set of up to 4,049 rooms keeps its 16 B entries below the 85,000 B threshold; 2,600 leaves room for the spread.
        const int Rooms = 250_000;
        var table = new RoomTable();
        for (var i = 0; i < Rooms; i++)
        {
            table.Add(new Room($"bench.r{i}", _services));
        }

        Assert.Equal(Rooms, table.Count);
        Assert.Equal(Rooms, table.ToArray().Distinct().Count());
        Assert.InRange(table.LargestShard, 1, 2_600);
        Assert.True(table.TryGetValue("bench.r123456", out var room));
        Assert.Equal("bench.r123456", room.Name);
    }
}
