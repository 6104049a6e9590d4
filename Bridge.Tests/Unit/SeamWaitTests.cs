using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;
using Microsoft.Extensions.Time.Testing;

namespace Bridge.Tests.Unit;

/// <summary>
/// A connection counts its live joins that have not taken their seam, and a publish to such a join's room waits
/// (SessionRooms.WhenSeamTakenAsync, docs/protocol.md §4, room.join). The count must return to 0 on every path a join
/// ends by, or every later publish of the connection takes the slow path; a wait must end when its join's seam is taken
/// or its membership closes, and after SessionRooms.MaxSeamWait at the latest. No NATS here: these paths never read the
/// stream (the room log throws if asked), and the clock is a fake one, advanced only where the bound is the point.
/// </summary>
public sealed class SeamWaitTests
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    private readonly FakeTimeProvider _time = new();
    private readonly ClientSession _session;

    public SeamWaitTests() => _session = Sessions.New(reader: Sessions.UnreadReader(_time));

    private SessionRooms Rooms => _session.Rooms;

    private RoomMembership Member(string room, JoinOptions options = default) => new(_session, room, options);

    private RoomMembership Added(string room, JoinOptions options = default)
    {
        var member = Member(room, options);
        Assert.Equal(AddResult.Added, Rooms.TryAdd(member, maxRooms: 10, maxPatterns: 10, out _));
        return member;
    }

    private ValueTask<bool> PublishWaitAsync(string room, CancellationToken closing = default) =>
        Rooms.WhenSeamTakenAsync(room, _time, closing, CancellationToken.None);

    [Fact]
    public void A_live_join_counts_until_its_seam_is_taken_and_once_only()
    {
        var member = Added("a");
        Assert.Equal(1, Rooms.SeamsPending);
        Assert.True(member.SeamPending);

        member.Hold();
        Assert.Equal(0, Rooms.SeamsPending);
        member.Hold();
        member.Close();
        Assert.Equal(0, Rooms.SeamsPending);
    }

    [Fact]
    public void A_live_join_that_closes_before_its_seam_stops_counting_once_however_often_it_is_closed()
    {
        var member = Added("a");
        member.Close();
        Assert.Equal(0, Rooms.SeamsPending);
        member.Close();
        member.Hold();
        Assert.Equal(0, Rooms.SeamsPending);
        Assert.False(member.SeamPending);
    }

    [Fact]
    public async Task A_live_join_left_before_it_reached_its_room_stops_counting()
    {
        Added("a");
        Added("b");
        Assert.Equal(2, Rooms.SeamsPending);

        Assert.True(await Rooms.LeaveAsync("a"));
        Assert.Equal(1, Rooms.SeamsPending);

        await Rooms.LeaveAllAsync();
        Assert.Equal(0, Rooms.SeamsPending);
    }

    [Fact]
    public void Joins_that_are_not_added_or_need_no_wait_are_not_counted()
    {
        // A join with since replays what was stored before its seam; a pattern's seam no publish waits for.
        Added("s", new JoinOptions(Since: 5));
        Added("p.>");
        Assert.Equal(0, Rooms.SeamsPending);

        var first = Added("a");
        Assert.Equal(AddResult.AlreadyIn, Rooms.TryAdd(Member("a"), maxRooms: 10, maxPatterns: 10, out var existing));
        Assert.Same(first, existing);
        Assert.Equal(AddResult.TooManyRooms, Rooms.TryAdd(Member("over"), maxRooms: 3, maxPatterns: 10, out _));
        Assert.Equal(1, Rooms.SeamsPending);

        first.Hold();
        Assert.Equal(0, Rooms.SeamsPending);
    }

    [Fact]
    public async Task A_publish_waits_for_its_rooms_join_only_and_goes_when_the_seam_is_taken()
    {
        var joining = Added("a");
        Added("b");

        // Another room's pending join holds nothing up.
        var other = PublishWaitAsync("c");
        Assert.True(other.IsCompleted);
        Assert.False(await other);

        var wait = PublishWaitAsync("a").AsTask();
        Assert.False(wait.IsCompleted);

        joining.Hold();
        Assert.False(await wait.WaitAsync(Patience));
    }

    [Fact]
    public async Task A_waiting_publish_goes_when_its_join_closes_before_the_seam()
    {
        var joining = Added("a");
        var wait = PublishWaitAsync("a").AsTask();
        Assert.False(wait.IsCompleted);

        // Another join's seam wakes the waiter; the publish keeps waiting for its own room's.
        Added("b").Hold();
        await Task.Yield();
        Assert.False(wait.IsCompleted);

        joining.Close();
        Assert.False(await wait.WaitAsync(Patience));
        Assert.Equal(0, Rooms.SeamsPending);
    }

    [Fact]
    public async Task A_waiting_publish_goes_after_the_bound_when_the_seam_is_not_taken()
    {
        var joining = Added("a");
        var wait = PublishWaitAsync("a").AsTask();

        _time.Advance(SessionRooms.MaxSeamWait - TimeSpan.FromMilliseconds(1));
        await Task.Yield();
        Assert.False(wait.IsCompleted);

        _time.Advance(TimeSpan.FromMilliseconds(1));
        Assert.True(await wait.WaitAsync(Patience));
        Assert.True(joining.SeamPending);
    }

    [Fact]
    public async Task A_waiting_publish_goes_when_the_connection_closes()
    {
        Added("a");
        using var closing = new CancellationTokenSource();
        var wait = PublishWaitAsync("a", closing.Token).AsTask();
        Assert.False(wait.IsCompleted);

        await closing.CancelAsync();
        Assert.False(await wait.WaitAsync(Patience));
    }
}
