using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Bridge.Tests.Unit;

/// <summary>
/// Conflation's timing on a fake clock (docs/protocol.md §4, <c>maxRate</c>): leading edge, replacement, trailing edge,
/// backpressure and position, through a real <see cref="Room"/>'s dispatch into its shared <see cref="ConflationGroup"/>s
/// and each member's <see cref="ConflatedMember"/> (docs/design/shared-conflation.md).
/// </summary>
public sealed class ConflationTests
{
    private readonly CountingClock _time = new();
    private readonly Room _room = new("r.*", new RoomServices(null!, null!, null!, NullLogger.Instance));
    private readonly DateTimeOffset _start;
    private ulong _seq;

    public ConflationTests() => _start = _time.GetUtcNow();

    private TimeSpan Now => _time.GetUtcNow() - _start;

    /// <summary>A conflated member of the room past its seam, active unless told otherwise.</summary>
    private Screen Join(double rate, bool activate = true)
    {
        var screen = new Screen(this, rate);
        Assert.True(_room.TryAdd(screen));
        Assert.True(_room.Sequence.SeamAsync(screen, CancellationToken.None).AsTask().IsCompletedSuccessfully);
        if (activate)
        {
            screen.Activate();
        }

        return screen;
    }

    private ConflationGroup Group => Assert.Single(_room.ConflationGroups);

    private ulong Offer(string room = "r")
    {
        var seq = ++_seq;
        lock (_room.Gate)
        {
            _room.Dispatch(new RoomMessage { Room = room, Seq = seq, Timestamp = 1, Type = "t", PayloadKind = PayloadKind.None });
        }
        return seq;
    }

    private void Advance(int milliseconds) => _time.Advance(TimeSpan.FromMilliseconds(milliseconds));

    [Fact]
    public void The_first_message_goes_at_once_later_ones_replace_each_other_and_the_newest_goes_when_the_interval_ends()
    {
        var screen = Join(rate: 10); // 100 ms
        var first = Offer();
        Assert.Equal([first], screen.Seqs);

        Advance(10);
        Offer();
        Advance(10);
        Offer();
        Advance(10);
        var newest = Offer();
        Assert.Single(screen.Sent);
        Assert.Equal(2, Group.Replaced);

        Advance(69); // 99 ms after the first send: still inside the interval
        Assert.Single(screen.Sent);
        Advance(1);
        Assert.Equal([first, newest], screen.Seqs);
        Assert.Equal(TimeSpan.FromMilliseconds(100), screen.Sent[1].At);

        // Nothing pending: the timer stays quiet, and the next message after a full interval goes at once.
        Advance(500);
        Assert.Equal(2, screen.Sent.Count);
        var later = Offer();
        Assert.Equal(later, screen.Sent[^1].Seq);
        Assert.Equal(TimeSpan.FromMilliseconds(600), screen.Sent[^1].At);
    }

    [Fact]
    public void A_burst_of_1000_messages_per_second_at_rate_10_sends_about_10_per_second_ending_on_the_last()
    {
        var screen = Join(rate: 10);
        ulong last = 0;
        for (var ms = 0; ms < 2000; ms++)
        {
            last = Offer();
            Advance(1);
        }

        Advance(200);
        Assert.InRange(screen.Sent.Count, 20, 21);
        Assert.Equal(last, screen.Sent[^1].Seq);
        // Never two sends of the room within one interval.
        AssertSpaced(screen.Sent, TimeSpan.FromMilliseconds(100));
        Assert.Equal(screen.Seqs.Order(), screen.Seqs);
    }

    [Fact]
    public void Each_room_of_a_pattern_has_its_own_interval()
    {
        var screen = Join(rate: 4); // 250 ms
        var a1 = Offer("a");
        var b1 = Offer("b");
        var a2 = Offer("a");
        Advance(100);
        var c1 = Offer("c");
        var b2 = Offer("b");
        Assert.Equal([a1, b1, c1], screen.Seqs);

        Advance(150);
        Assert.Equal([a1, b1, c1], screen.Seqs.Take(3));
        Assert.Equal([a2, b2], screen.Seqs.Skip(3).Order());
    }

    [Fact]
    public void The_position_stays_below_the_first_message_still_pending_so_a_resume_from_it_misses_no_newest_value()
    {
        var screen = Join(rate: 10);
        var a1 = Offer("a");
        Assert.Equal(a1, screen.Sent[^1].Position);
        var a2 = Offer("a"); // pending
        var b1 = Offer("b"); // sent at once, but a2 is still pending
        Assert.Equal(b1, screen.Sent[^1].Seq);
        Assert.Equal(a2 - 1, screen.Sent[^1].Position);
        Assert.Equal(a2 - 1, screen.Position);

        Advance(100);
        Assert.Equal(a2, screen.Sent[^1].Seq);
        Assert.Equal(b1, screen.Sent[^1].Position); // nothing pending: the newest offered
    }

    [Fact]
    public void A_queue_above_its_mark_keeps_each_rooms_newest_and_sends_them_as_soon_as_it_drains_not_an_interval_later()
    {
        var screen = Join(rate: 10);
        screen.Room = 0;
        Offer("a");
        Assert.Equal(1, screen.Waits);
        Advance(50);
        var a = Offer("a");
        var b = Offer("b");
        Assert.Empty(screen.Sent);
        Assert.Equal(1, screen.Waits); // asked once; nothing is offered to the queue until it drains

        Advance(500); // long past the interval: no timer retries while the queue has not drained
        Assert.Empty(screen.Sent);
        screen.Room = int.MaxValue;
        Advance(1);
        screen.Drained();

        Assert.Equal([a, b], screen.Seqs);
        Assert.Equal(TimeSpan.FromMilliseconds(551), screen.Sent[^1].At);
        Assert.Equal(b, screen.Sent[^1].Position);
    }

    [Fact]
    public void A_drain_sends_the_rooms_due_first_while_the_queue_takes_them_and_the_rest_wait_for_the_next_drain()
    {
        var screen = Join(rate: 10);
        screen.Room = 0; // what the queue takes before it is above its mark again
        var c = Offer("c"); // due first
        Advance(10);
        var a = Offer("a");
        Advance(10);
        var b = Offer("b");
        Advance(10);
        var c2 = Offer("c"); // replaces c, and keeps its place in line
        Assert.Equal(1, screen.Waits);

        screen.Room = 2;
        screen.Drained();
        Assert.Equal([c2, a], screen.Seqs);
        Assert.Equal(2, screen.Waits); // b was refused: it waits for the next drain, not the clock
        Advance(1000);
        Assert.Equal(2, screen.Sent.Count);

        screen.Room = 10;
        screen.Drained();
        Assert.Equal([c2, a, b], screen.Seqs);
        Assert.True(c < c2);
    }

    [Fact]
    public void Before_it_is_active_messages_only_become_pending_and_activation_sends_the_newest()
    {
        var screen = Join(rate: 10, activate: false);
        Offer("a");
        var a = Offer("a");
        var b = Offer("b");
        Advance(1000);
        Assert.Empty(screen.Sent);
        screen.Activate();

        Assert.Equal([a, b], screen.Seqs);
        screen.Leave();
        Offer("a");
        Advance(1000);
        Assert.Equal(2, screen.Sent.Count);
    }

    [Fact]
    public void A_message_that_replaces_its_rooms_pending_one_does_not_read_the_clock()
    {
        // Every update of a busy room comes here, and most of them only replace a pending value: the clock read is
        // left out of that path.
        var screen = Join(rate: 4);
        Offer("a");
        Offer("a"); // inside the interval: pending
        var reads = _time.Reads;
        ulong last = 0;
        for (var i = 0; i < 100; i++)
        {
            last = Offer("a");
        }

        Assert.Equal(reads, _time.Reads);
        Advance(250);
        Assert.Equal(last, screen.Sent[^1].Seq);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1001)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_rate_outside_what_a_join_accepts_is_refused(double rate)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConflatedMember(rate, _time, new object(), (_, _) => true, () => { }));
        Assert.Throws<ArgumentOutOfRangeException>(() => new ConflationGroup("r", rate, _time, NullLogger.Instance));
    }

    // What sharing adds (docs/design/shared-conflation.md, "Tests that prove it").

    [Fact]
    public void Members_of_one_rate_are_one_group_and_get_the_same_values_at_the_same_ticks_even_one_that_joined_mid_interval()
    {
        var first = Join(rate: 10);
        var a1 = Offer("a");
        Advance(50);
        // Joined inside the room's interval: with a conflater of its own it would send a2 at once (its own leading
        // edge); in the group it gets the group's values when the group hands them out.
        var second = Join(rate: 10);
        Assert.Single(_room.ConflationGroups);
        var a2 = Offer("a");
        Assert.Empty(second.Sent);
        Advance(50);
        Assert.Equal([a1, a2], first.Seqs);
        Assert.Equal([(a2, TimeSpan.FromMilliseconds(100))], second.Sent.Select(s => (s.Seq, s.At)));

        ulong last = 0;
        for (var ms = 0; ms < 1000; ms++)
        {
            last = Offer(ms % 2 == 0 ? "a" : "b");
            Advance(1);
        }

        Advance(200);
        Assert.Equal(first.Sent.Skip(1).Select(s => (s.Seq, s.Room, s.At)), second.Sent.Select(s => (s.Seq, s.Room, s.At)));
        foreach (var screen in new[] { first, second })
        {
            foreach (var room in new[] { "a", "b" })
            {
                var sent = screen.Sent.Where(s => s.Room == room).ToList();
                AssertSpaced(sent, TimeSpan.FromMilliseconds(100));
                Assert.InRange(sent.Count, 9, 12);
            }

            Assert.Equal(last, screen.Sent[^1].Seq);
        }
    }

    [Fact]
    public void A_member_whose_queue_refuses_owes_the_room_and_gets_its_newest_when_it_drains_while_the_other_is_unaffected()
    {
        var slow = Join(rate: 10);
        var fast = Join(rate: 10);
        slow.Room = 0;
        var handed = Offer("a");
        Assert.Equal([handed], fast.Seqs);
        Assert.Empty(slow.Sent);
        Advance(30);
        var newer = Offer("a");
        Advance(70);
        Assert.Equal([handed, newer], fast.Seqs); // the group's tick, as if no one were slow
        Assert.Empty(slow.Sent);
        Assert.Equal(handed - 1, slow.Position); // below what it owes
        Assert.Equal(newer, fast.Position);

        Advance(10);
        var newest = Offer("a"); // pending in the group until 200 ms
        slow.Room = int.MaxValue;
        slow.Drained();
        Assert.Equal([newest], slow.Seqs); // the room's newest now, not the value it was handed
        Assert.Equal(newest - 1, slow.Sent[0].Position); // still below the group's pending one

        Advance(90);
        Assert.Equal([handed, newer, newest], fast.Seqs);
        Assert.Equal([newest], slow.Seqs); // the group's tick had nothing newer for it
    }

    [Fact]
    public void After_a_latest_or_a_drain_send_a_member_waits_one_interval_for_the_room_and_still_gets_the_last_value_of_the_burst()
    {
        var other = Join(rate: 10);
        var screen = Join(rate: 10, activate: false);
        var latest = Offer("a"); // other sends it (leading edge); the joining screen owes it
        screen.SentLatest("a", latest);
        screen.Activate();
        Assert.Empty(screen.Sent); // its latest value was this one already
        Advance(60);
        var b = Offer("a");
        Advance(40); // the group hands b out at 100 ms
        Assert.Equal([latest, b], other.Seqs);
        Assert.Equal([b], screen.Seqs);

        // A drain send off the group's schedule: the group's next value waits a full interval after it.
        screen.Room = 0;
        Advance(100);
        var c = Offer("a"); // leading edge at 200 ms: sent to other, refused by screen
        Advance(20);
        screen.Room = int.MaxValue;
        screen.Drained(); // 220 ms
        Assert.Equal([b, c], screen.Seqs);
        Advance(10);
        var d = Offer("a");
        Advance(5);
        var last = Offer("a"); // the burst's last
        Advance(65); // 300 ms: the group hands last out; screen sent c at 220 ms and waits until 320 ms
        Assert.Equal(last, other.Sent[^1].Seq);
        Assert.Equal([b, c], screen.Seqs);
        Advance(20);
        Assert.Equal([b, c, last], screen.Seqs);
        Assert.Equal(TimeSpan.FromMilliseconds(320), screen.Sent[^1].At);
        Assert.True(d < last);
        AssertSpaced(screen.Sent, TimeSpan.FromMilliseconds(100));
    }

    [Fact]
    public void A_member_never_gets_a_value_at_or_below_its_seam_and_one_that_left_is_not_handed_the_ticks_values()
    {
        var stays = Join(rate: 4);
        var leaves = Join(rate: 4);
        Offer("a");
        var old = Offer("a"); // pending in the group, from before the late member's seam
        var late = Join(rate: 4);
        leaves.Leave();
        Advance(250);
        Assert.Equal(old, stays.Sent[^1].Seq);
        Assert.Empty(late.Sent); // history its join covered (with latest, its latest value)
        Assert.Single(leaves.Sent);

        var next = Offer("a"); // the interval ended with old's hand-out: pending until 500 ms
        Advance(250);
        Assert.Equal([next], late.Seqs);
        Assert.Single(leaves.Sent);
    }

    [Fact]
    public void The_last_member_leaving_disposes_the_groups_timer_and_the_room_drops_the_group()
    {
        var keeper = Join(rate: 10); // keeps the room open
        var one = Join(rate: 4);
        var two = Join(rate: 4);
        Offer("a");
        Offer("a"); // pending: the timer is armed
        var group = Assert.Single(_room.ConflationGroups, g => g.Rate == 4);
        Assert.True(group.HasTimer);
        one.Leave();
        Assert.True(group.HasTimer);
        two.Leave();
        Assert.False(group.HasTimer);
        Assert.Equal([10.0], _room.ConflationGroups.Select(g => g.Rate));

        // A member of the same rate joining later starts a new group.
        var three = Join(rate: 4);
        Assert.NotSame(group, Assert.Single(_room.ConflationGroups, g => g.Rate == 4));
        Advance(100); // the rate-10 group's tick
        Advance(1000);
        var a = Offer("a");
        Assert.Equal([a], three.Seqs);
        Assert.Equal(a, keeper.Sent[^1].Seq);
    }

    [Fact]
    public void Members_with_rates_4_and_10_on_one_room_are_two_groups_and_each_gets_its_own_rate()
    {
        var slow = Join(rate: 4);
        var fast = Join(rate: 10);
        var fastToo = Join(rate: 10);
        Assert.Equal(2, _room.ConflationGroups.Count);
        ulong last = 0;
        for (var ms = 0; ms < 2000; ms++)
        {
            last = Offer("a");
            Advance(1);
        }

        Advance(300);
        Assert.InRange(slow.Sent.Count, 8, 9);
        Assert.InRange(fast.Sent.Count, 20, 21);
        AssertSpaced(slow.Sent, TimeSpan.FromMilliseconds(250));
        AssertSpaced(fast.Sent, TimeSpan.FromMilliseconds(100));
        Assert.Equal(fast.Seqs, fastToo.Seqs);
        Assert.Equal(last, slow.Sent[^1].Seq);
        Assert.Equal(last, fast.Sent[^1].Seq);
    }

    [Fact]
    public void A_member_whose_delivery_throws_does_not_cost_the_other_members_of_its_group_the_value()
    {
        var broken = Join(rate: 10);
        var before = Join(rate: 10);
        var after = Join(rate: 10);
        broken.Throws = true;
        ulong first = 0;
        var failure = Assert.Throws<AggregateException>(() => first = Offer("a")); // leading edge: from the dispatch
        Assert.Single(failure.InnerExceptions);
        first = _seq;
        var pending = Offer("a");
        Advance(100); // the group's tick: the failure is logged, the others still get the value
        Assert.Equal([first, pending], before.Seqs);
        Assert.Equal([first, pending], after.Seqs);

        broken.Throws = false;
        var next = Offer("a");
        Advance(100);
        Assert.Equal([next], broken.Seqs);
    }

    [Theory]
    [InlineData(1e-9)] // one value per 31 years: beyond what a runtime timer can wait (about 49.7 days)
    [InlineData(1e-300)] // its interval is beyond a long's range of clock ticks
    [InlineData(double.Epsilon)]
    public void A_tiny_rate_a_join_accepts_conflates_and_does_not_cost_another_groups_member_its_value(double rate)
    {
        // The groups are offered in join order: the tiny rate's comes first, so a failure in it would reach the other.
        var tiny = Join(rate);
        var other = Join(rate: 10);
        var first = Offer("a");
        Advance(150);
        var second = Offer("a"); // pending for the tiny rate (its timer is armed), at once for rate 10
        Advance(150);
        var third = Offer("a");
        Advance(150);

        Assert.Equal([first], tiny.Seqs);
        Assert.Equal([first, second, third], other.Seqs);
    }

    private static void AssertSpaced(List<(ulong Seq, string Room, ulong Position, TimeSpan At)> sent, TimeSpan interval) =>
        Assert.All(sent.Zip(sent.Skip(1)), p => Assert.True(p.Second.At - p.First.At >= interval, $"{p.First.At} then {p.Second.At}"));

    /// <summary>A conflated member of the room: a queue that takes <see cref="Room"/> more values, and what it was sent.</summary>
    private sealed class Screen : IRoomMember
    {
        private readonly ConflationTests _test;
        private readonly object _gate = new();

        public Screen(ConflationTests test, double rate)
        {
            _test = test;
            Conflation = new ConflatedMember(rate, test._time, _gate, Send, () => Waits++);
        }

        public ConflatedMember Conflation { get; }

        public List<(ulong Seq, string Room, ulong Position, TimeSpan At)> Sent { get; } = [];

        public IEnumerable<ulong> Seqs => Sent.Select(s => s.Seq);

        public int Room { get; set; } = int.MaxValue;

        public int Waits { get; private set; }

        public bool Throws { get; set; }

        public ulong Position
        {
            get
            {
                lock (_gate)
                {
                    return Conflation.Position;
                }
            }
        }

        public string ConnectionId => "c";

        public string User => "u";

        private bool Send(RoomMessage message, ulong position)
        {
            if (Throws)
            {
                throw new InvalidOperationException("this member fails");
            }

            if (Room == 0)
            {
                return false;
            }

            Room--;
            Sent.Add((message.Seq, message.Room, position, _test.Now));
            return true;
        }

        public void Activate()
        {
            lock (_gate)
            {
                Conflation.Activate();
            }
        }

        public void Drained()
        {
            lock (_gate)
            {
                Conflation.Drained();
            }
        }

        public void SentLatest(string room, ulong seq)
        {
            lock (_gate)
            {
                Conflation.Sent(room, seq);
            }
        }

        public void Leave()
        {
            lock (_gate)
            {
                Conflation.Dispose();
            }

            _test._room.Remove(this);
        }

        public void Deliver(RoomMessage message) => throw new InvalidOperationException("a conflated member is not on the room's fan-out");

        public void DeliverAfterGap(RoomMessage message) => Deliver(message);

        public void Hold()
        {
        }
    }

    /// <summary>A fake clock that counts the reads of its timestamp.</summary>
    private sealed class CountingClock : FakeTimeProvider
    {
        public int Reads { get; private set; }

        public override long GetTimestamp()
        {
            Reads++;
            return base.GetTimestamp();
        }
    }
}
