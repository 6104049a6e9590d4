using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Time.Testing;

namespace Bridge.Tests.Unit;

/// <summary>Conflation's timing on a fake clock (docs/protocol.md §4, <c>maxRate</c>): leading edge, replacement, trailing edge.</summary>
public sealed class ConflaterTests
{
    private readonly CountingClock _time = new();
    private readonly Lock _gate = new();
    private readonly List<(ulong Seq, string Room, ulong Position, TimeSpan At)> _sent = [];
    private readonly DateTimeOffset _start;
    private bool _full;
    private int _waits;
    private ulong _seq;

    public ConflaterTests() => _start = _time.GetUtcNow();

    private Conflater Create(double rate)
    {
        var conflater = new Conflater(rate, _time, _gate, (message, position) =>
        {
            if (_full)
            {
                return false;
            }

            _sent.Add((message.Seq, message.Room, position, _time.GetUtcNow() - _start));
            return true;
        }, () => _waits++);
        lock (_gate)
        {
            conflater.Activate();
        }

        return conflater;
    }

    private ulong Offer(Conflater conflater, string room = "r")
    {
        var seq = ++_seq;
        lock (_gate)
        {
            conflater.Offer(new RoomMessage { Room = room, Seq = seq, Timestamp = 1, Type = "t", PayloadKind = PayloadKind.None });
        }

        return seq;
    }

    private void Advance(int milliseconds) => _time.Advance(TimeSpan.FromMilliseconds(milliseconds));

    [Fact]
    public void The_first_message_goes_at_once_later_ones_replace_each_other_and_the_newest_goes_when_the_interval_ends()
    {
        using var conflater = Create(rate: 10); // 100 ms
        var first = Offer(conflater);
        Assert.Equal([first], _sent.Select(s => s.Seq));

        Advance(10);
        Offer(conflater);
        Advance(10);
        Offer(conflater);
        Advance(10);
        var newest = Offer(conflater);
        Assert.Single(_sent);
        Assert.Equal(2, conflater.Replaced);

        Advance(69); // 99 ms after the first send: still inside the interval
        Assert.Single(_sent);
        Advance(1);
        Assert.Equal([first, newest], _sent.Select(s => s.Seq));
        Assert.Equal(TimeSpan.FromMilliseconds(100), _sent[1].At);

        // Nothing pending: the timer stays quiet, and the next message after a full interval goes at once.
        Advance(500);
        Assert.Equal(2, _sent.Count);
        var later = Offer(conflater);
        Assert.Equal(later, _sent[^1].Seq);
        Assert.Equal(TimeSpan.FromMilliseconds(600), _sent[^1].At);
    }

    [Fact]
    public void A_burst_of_1000_messages_per_second_at_rate_10_sends_about_10_per_second_ending_on_the_last()
    {
        using var conflater = Create(rate: 10);
        ulong last = 0;
        for (var ms = 0; ms < 2000; ms++)
        {
            last = Offer(conflater);
            Advance(1);
        }

        Advance(200);
        Assert.InRange(_sent.Count, 20, 21);
        Assert.Equal(last, _sent[^1].Seq);
        // Never two sends of the room within one interval.
        Assert.All(_sent.Zip(_sent.Skip(1)), p => Assert.True(p.Second.At - p.First.At >= TimeSpan.FromMilliseconds(100), $"{p.First.At} then {p.Second.At}"));
        Assert.Equal(_sent.Select(s => s.Seq).Order(), _sent.Select(s => s.Seq));
    }

    [Fact]
    public void Each_room_of_a_pattern_has_its_own_interval()
    {
        using var conflater = Create(rate: 4); // 250 ms
        var a1 = Offer(conflater, "a");
        var b1 = Offer(conflater, "b");
        var a2 = Offer(conflater, "a");
        Advance(100);
        var c1 = Offer(conflater, "c");
        var b2 = Offer(conflater, "b");
        Assert.Equal([a1, b1, c1], _sent.Select(s => s.Seq));

        Advance(150);
        Assert.Equal([a1, b1, c1], _sent.Take(3).Select(s => s.Seq));
        Assert.Equal([a2, b2], _sent.Skip(3).Select(s => s.Seq).Order());
    }

    [Fact]
    public void The_position_stays_below_the_first_message_still_pending_so_a_resume_from_it_misses_no_newest_value()
    {
        using var conflater = Create(rate: 10);
        var a1 = Offer(conflater, "a");
        Assert.Equal(a1, _sent[^1].Position);
        var a2 = Offer(conflater, "a"); // pending
        var b1 = Offer(conflater, "b"); // sent at once, but a2 is still pending
        Assert.Equal(b1, _sent[^1].Seq);
        Assert.Equal(a2 - 1, _sent[^1].Position);
        lock (_gate)
        {
            Assert.Equal(a2 - 1, conflater.Position);
        }

        Advance(100);
        Assert.Equal(a2, _sent[^1].Seq);
        Assert.Equal(b1, _sent[^1].Position); // nothing pending: the newest offered
    }

    [Fact]
    public void A_queue_above_its_mark_keeps_each_rooms_newest_and_sends_them_as_soon_as_it_drains_not_an_interval_later()
    {
        using var conflater = Create(rate: 10);
        _full = true;
        Offer(conflater, "a");
        Assert.Equal(1, _waits);
        Advance(50);
        var a = Offer(conflater, "a");
        var b = Offer(conflater, "b");
        Assert.Empty(_sent);
        Assert.Equal(1, _waits); // asked once; nothing is offered to the queue until it drains

        Advance(500); // long past the interval: no timer retries while the queue has not drained
        Assert.Empty(_sent);
        _full = false;
        Advance(1);
        lock (_gate)
        {
            conflater.Drained();
        }

        Assert.Equal([a, b], _sent.Select(s => s.Seq));
        Assert.Equal(TimeSpan.FromMilliseconds(551), _sent[^1].At);
        Assert.Equal(b, _sent[^1].Position);
    }

    [Fact]
    public void A_drain_sends_the_rooms_due_first_while_the_queue_takes_them_and_the_rest_wait_for_the_next_drain()
    {
        var room = 0; // what the queue takes before it is above its mark again
        var waits = 0;
        using var conflater = new Conflater(10, _time, _gate, (message, _) =>
        {
            if (room == 0)
            {
                return false;
            }

            room--;
            _sent.Add((message.Seq, message.Room, 0, _time.GetUtcNow() - _start));
            return true;
        }, () => waits++);
        lock (_gate)
        {
            conflater.Activate();
        }

        var c = Offer(conflater, "c"); // due first
        Advance(10);
        var a = Offer(conflater, "a");
        Advance(10);
        var b = Offer(conflater, "b");
        Advance(10);
        var c2 = Offer(conflater, "c"); // replaces c, and keeps its place in line
        Assert.Equal(1, waits);

        room = 2;
        lock (_gate)
        {
            conflater.Drained();
        }

        Assert.Equal([c2, a], _sent.Select(s => s.Seq));
        Assert.Equal(2, waits); // b was refused: it waits for the next drain, not the clock
        Advance(1000);
        Assert.Equal(2, _sent.Count);

        room = 10;
        lock (_gate)
        {
            conflater.Drained();
        }

        Assert.Equal([c2, a, b], _sent.Select(s => s.Seq));
        Assert.True(c < c2);
    }

    [Fact]
    public void Before_it_is_active_messages_only_become_pending_and_activation_sends_the_newest()
    {
        var conflater = new Conflater(10, _time, _gate, (message, _) =>
        {
            _sent.Add((message.Seq, message.Room, 0, TimeSpan.Zero));
            return true;
        }, () => { });
        Offer(conflater, "a");
        var a = Offer(conflater, "a");
        var b = Offer(conflater, "b");
        Advance(1000);
        Assert.Empty(_sent);
        lock (_gate)
        {
            conflater.Activate();
        }

        Assert.Equal([a, b], _sent.Select(s => s.Seq));
        conflater.Dispose();
        Offer(conflater, "a");
        Advance(1000);
        Assert.Equal(2, _sent.Count);
    }

    [Fact]
    public void A_message_that_replaces_its_rooms_pending_one_does_not_read_the_clock()
    {
        // Every conflated member takes every update of its rooms, and most of them only replace a pending value: the
        // clock read is left out of that path (at 200 screens it was 200 reads per update).
        using var conflater = Create(rate: 4);
        Offer(conflater, "a");
        Offer(conflater, "a"); // inside the interval: pending
        var reads = _time.Reads;
        ulong last = 0;
        for (var i = 0; i < 100; i++)
        {
            last = Offer(conflater, "a");
        }

        Assert.Equal(reads, _time.Reads);
        Advance(250);
        Assert.Equal(last, _sent[^1].Seq);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(-1)]
    [InlineData(1001)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    public void A_rate_outside_what_a_join_accepts_is_refused(double rate) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new Conflater(rate, _time, _gate, (_, _) => true, () => { }));

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
