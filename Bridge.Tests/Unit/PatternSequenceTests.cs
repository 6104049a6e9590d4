using System.Diagnostics.Metrics;
using System.Runtime.CompilerServices;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Bridge.Worker.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.Tests.Unit;

/// <summary>
/// A room's and a pattern's live sequencing (RoomSequence's remarks): live messages are dispatched as they come; one whose
/// predecessor was never seen, or that comes after a connection drop, is preceded by a read of the stream, and whatever
/// comes live meanwhile waits (a bounded backlog: beyond it, the stream is read instead), so the dispatch stays complete
/// and in stream order. The stream here is a list (what is stored), the feed is the test calling
/// <see cref="RoomSequence.OnLive"/>; the integration tests run the same paths against nats-server.
/// </summary>
public sealed class PatternSequenceTests : IDisposable
{
    private const int Backlog = 4;
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly StoredLog _log = new();
    private readonly Member _member = new();
    private readonly BridgeMetrics _metrics;
    private readonly Room _room;

    public PatternSequenceTests()
    {
        _metrics = new BridgeMetrics(_services.GetRequiredService<IMeterFactory>(), TimeProvider.System);
        _room = Start("site.>");
    }

    public void Dispose() => _services.Dispose();

    private Room Start(string name)
    {
        var room = new Room(name, new RoomServices(null!, _log, _metrics, NullLogger.Instance, Backlog));
        Assert.True(room.TryAdd(_member));
        StartAsync(room).GetAwaiter().GetResult(); // the stored log answers at once
        return room;
    }

    /// <summary>What the feed does once its subscription is in place: asks the log for the room's last seq and starts at it.</summary>
    private async Task StartAsync(Room room) => room.Sequence.Start(await _log.GetLastSeqAsync(room.Name, CancellationToken.None));

    private static RoomMessage Live(StoredLog log, ulong seq)
    {
        var stored = log.Messages.Single(m => m.Seq == seq);
        var previous = log.Messages.Where(m => m.Room == stored.Room && m.Seq < seq).Select(m => m.Seq).DefaultIfEmpty(0UL).Max();
        return Message(stored.Room, seq, previous);
    }

    private async Task LiveAsync(ulong seq, Room? room = null)
    {
        room ??= _room;
        room.Sequence.OnLive(Live(_log, seq));
        await room.Sequence.IdleAsync();
    }

    [Fact]
    public void Messages_that_follow_the_position_are_dispatched_at_once_without_a_read()
    {
        _log.Store("site.a", "site.b", "site.a"); // 1..3
        foreach (var seq in new ulong[] { 1, 2, 3 })
        {
            _room.Sequence.OnLive(Live(_log, seq));
            Assert.Equal(seq, _member.Received[^1]); // on the caller's thread, before OnLive returns
        }

        Assert.Equal(0, _log.Reads);
    }

    [Fact]
    public async Task A_room_message_after_a_gap_has_the_gap_read_first_and_what_comes_meanwhile_waits_its_turn()
    {
        var room = Start("site.a");
        _log.Store("site.a", "site.a", "site.a", "site.a"); // 1..4
        room.Sequence.OnLive(Live(_log, 1));
        _log.Paused = new TaskCompletionSource();

        // 2 never came: 3 shows the gap (its previous is 2); 4 comes while 2 is being read.
        room.Sequence.OnLive(Live(_log, 3));
        room.Sequence.OnLive(Live(_log, 4));
        Assert.Equal([1UL], _member.Received);
        _log.Paused.SetResult();
        await room.Sequence.IdleAsync();
        Assert.Equal([1UL, 2, 3, 4], _member.Received);
        Assert.Equal(1, _log.Reads);
    }

    [Fact]
    public async Task Live_messages_beyond_the_backlog_while_a_gap_is_read_are_read_from_the_stream_in_order()
    {
        var room = Start("site.a");
        _log.Store(Enumerable.Repeat("site.a", 12).ToArray()); // 1..12
        room.Sequence.OnLive(Live(_log, 1));
        _log.Paused = new TaskCompletionSource();
        room.Sequence.OnLive(Live(_log, 3)); // a gap: 2 is read
        for (ulong seq = 4; seq <= 11; seq++)
        {
            room.Sequence.OnLive(Live(_log, seq)); // 3..6 wait, 7..11 find the backlog full
        }

        _log.Paused.SetResult();
        await room.Sequence.IdleAsync();
        Assert.Equal(Enumerable.Range(1, 12).Select(i => (ulong)i), _member.Received); // 12: stored, read by the catch-up

        // Caught up: the next live message goes out without a read.
        var reads = _log.Reads;
        _log.Store("site.a"); // 13
        room.Sequence.OnLive(Live(_log, 13));
        Assert.Equal(13UL, _member.Received[^1]);
        Assert.Equal(reads, _log.Reads);
    }

    [Fact]
    public async Task A_room_keeps_drain_state_only_while_it_reads_a_gap_from_the_stream()
    {
        var room = Start("site.a");
        Assert.False(room.HasDrainState); // started with nothing waiting
        _log.Store("site.a", "site.a", "site.a"); // 1..3
        room.Sequence.OnLive(Live(_log, 1));
        Assert.False(room.HasDrainState); // followed the position: dispatched at once

        _log.Paused = new TaskCompletionSource();
        room.Sequence.OnLive(Live(_log, 3)); // 2 never came: read while 3 waits
        Assert.True(room.HasDrainState);
        _log.Paused.SetResult();
        await room.Sequence.IdleAsync();
        Assert.Equal([1UL, 2, 3], _member.Received);
        Assert.False(room.HasDrainState);
    }

    [Fact]
    public void A_room_of_one_member_keeps_no_member_set_and_its_second_member_gets_one_both_are_dispatched_from()
    {
        var room = Start("site.a");
        Assert.False(room.HasCrowd);
        var second = new Member();
        Assert.True(room.TryAdd(second));
        Assert.True(room.HasCrowd);

        _log.Store("site.a"); // 1
        room.Sequence.OnLive(Live(_log, 1));
        Assert.Equal([1UL], _member.Received);
        Assert.Equal([1UL], second.Received);

        Assert.False(room.Remove(second));
        _log.Store("site.a"); // 2
        room.Sequence.OnLive(Live(_log, 2));
        Assert.Equal([1UL, 2], _member.Received);
        Assert.Equal([1UL], second.Received);
        Assert.True(room.Remove(_member)); // the last one: the room closes
        Assert.False(room.TryAdd(second));
    }

    [Fact]
    public async Task Messages_that_come_before_the_start_are_history_up_to_it_and_dispatched_after_it()
    {
        var room = new Room("site.a", new RoomServices(null!, _log, _metrics, NullLogger.Instance, Backlog));
        Assert.True(room.TryAdd(_member));
        _log.Store("site.a", "site.a"); // 1, 2: stored before the start
        _log.LastPaused = new TaskCompletionSource();
        var start = StartAsync(room); // its answer (2) is on its way

        room.Sequence.OnLive(Live(_log, 2)); // came live before the answer: history
        _log.Store("site.a"); // 3, after it
        room.Sequence.OnLive(Live(_log, 3));
        Assert.Empty(_member.Received);

        _log.LastPaused.SetResult();
        await start;
        await room.Sequence.IdleAsync();
        Assert.Equal([3UL], _member.Received);
        Assert.Equal(3UL, room.Sequence.Position);
    }

    [Fact]
    public async Task After_a_connection_drop_the_next_message_first_catches_the_pattern_up_to_the_stream()
    {
        _log.Store("site.a", "site.b"); // 1, 2
        await LiveAsync(1);
        await LiveAsync(2);
        _room.Sequence.MarkStale();

        // Stored while the connection was away (never republished to this worker), then a live one of site.b whose own
        // chain (its previous is 2) shows nothing.
        _log.Store("site.a", "site.c", "site.b"); // 3, 4, 5
        _room.Sequence.OnLive(Message("site.b", 5, previous: 2));
        await _room.Sequence.IdleAsync();
        Assert.Equal([1UL, 2, 3, 4, 5], _member.Received);

        // Caught up: the next message needs no read.
        var reads = _log.Reads;
        _log.Store("site.c"); // 6
        await LiveAsync(6);
        Assert.Equal(reads, _log.Reads);
        Assert.Equal([1UL, 2, 3, 4, 5, 6], _member.Received);
    }

    [Fact]
    public async Task A_failed_catch_up_keeps_the_pattern_stale_and_the_next_message_tries_again()
    {
        _log.Store("site.a"); // 1
        await LiveAsync(1);
        _room.Sequence.MarkStale();
        _log.Store("site.b", "site.c"); // 2, 3
        _log.Failing = true;
        await LiveAsync(3);
        Assert.Equal([1UL], _member.Received);

        _log.Failing = false;
        _log.Store("site.a"); // 4
        _room.Sequence.OnLive(Message("site.a", 4, previous: 1));
        await _room.Sequence.IdleAsync();
        Assert.Equal([1UL, 2, 3, 4], _member.Received);
    }

    [Fact]
    public async Task A_catch_up_after_a_reconnect_reads_what_was_stored_meanwhile()
    {
        var room = Start("site.a");
        _log.Store("site.a"); // 1
        await LiveAsync(1, room);
        _log.Store("site.a", "site.a"); // 2, 3: never came live
        await room.Sequence.CatchUpAsync(CancellationToken.None);
        Assert.Equal([1UL, 2, 3], _member.Received);
    }

    [Fact]
    public void Patterns_cover_and_overlap_exactly_when_some_room_matches()
    {
        static RoomPattern P(string text) => RoomPattern.TryParse(text, out var p) ? p! : throw new ArgumentException(text);
        Assert.True(P("a.>").Covers(P("a.b.*")));
        Assert.True(P("a.*").Covers(P("a.b")));
        Assert.True(P("a.*.>").Covers(P("a.b.>")));
        Assert.False(P("a.*").Covers(P("a.>")));
        Assert.False(P("a.b.*").Covers(P("a.*.*")));
        Assert.False(P("a.>").Covers(P("a")));
        Assert.False(P("a.*").Covers(P("a.b.c")));

        Assert.True(P("a.*.c").Overlaps(P("a.b.*")));
        Assert.True(P("a.>").Overlaps(P("*.b")));
        Assert.False(P("a.*").Overlaps(P("a.b.c")));
        Assert.False(P("a.>").Overlaps(P("a")));
        Assert.False(P("a.*.c").Overlaps(P("a.*.d")));
        Assert.Equal(0, P(">").LiteralPrefixTokens);
        Assert.Equal(2, P("devices.site-3.>").LiteralPrefixTokens);
    }

    private static RoomMessage Message(string room, ulong seq, ulong previous) =>
        new() { Room = room, Seq = seq, PreviousSeq = previous, Timestamp = 1, Type = "t", PayloadKind = PayloadKind.None };

    private sealed class Member : IRoomMember
    {
        public List<ulong> Received { get; } = [];

        public string ConnectionId => "c";

        public string User => "u";

        public void Deliver(RoomMessage message) => Received.Add(message.Seq);

        public void DeliverAfterGap(RoomMessage message) => Deliver(message);

        public void Hold()
        {
        }
    }

    /// <summary>What the stream holds, read by pattern.</summary>
    private sealed class StoredLog : IRoomLog
    {
        public List<(string Room, ulong Seq)> Messages { get; } = [];

        public int Reads { get; private set; }

        public bool Failing { get; set; }

        /// <summary>While set and not completed, reads wait for it (a read in flight).</summary>
        public TaskCompletionSource? Paused { get; set; }

        public void Store(params string[] rooms)
        {
            foreach (var room in rooms)
            {
                Messages.Add((room, (ulong)Messages.Count + 1));
            }
        }

        private IEnumerable<(string Room, ulong Seq)> Of(string name) =>
            RoomPattern.TryParse(name, out var pattern) ? Messages.Where(m => pattern!.Matches(m.Room)) : [];

        /// <summary>While set and not completed, the answer to a last-seq ask (as it was when asked) waits for it.</summary>
        public TaskCompletionSource? LastPaused { get; set; }

        public ValueTask<ulong> GetLastSeqAsync(string room, CancellationToken cancellationToken) =>
            Failing ? throw new InvalidOperationException("the stream is unreachable") : LastAsync(Of(room).Select(m => m.Seq).DefaultIfEmpty(0UL).Max());

        private async ValueTask<ulong> LastAsync(ulong last)
        {
            if (LastPaused is { } paused)
            {
                await paused.Task;
            }

            return last;
        }

        public ValueTask<bool> IsStoredInRoomAsync(string room, ulong seq, CancellationToken cancellationToken) =>
            ValueTask.FromResult(Of(room).Any(m => m.Seq == seq));

        public async IAsyncEnumerable<RoomMessage> ReadAsync(
            string room, ulong afterSeq, ulong? upToSeq, [EnumeratorCancellation] CancellationToken cancellationToken, ulong mustReach = 0, ReadLimit limit = default,
            DropCheck? check = null)
        {
            Reads++;
            await Task.Yield();
            if (Paused is { } paused)
            {
                await paused.Task;
            }

            foreach (var (name, seq) in Of(room).Where(m => m.Seq > afterSeq && m.Seq <= (upToSeq ?? ulong.MaxValue)).ToList())
            {
                yield return Message(name, seq, 0);
            }
        }

        // Members' reads: not a room sequence's.
        public IRoomCursor OpenCursor(string room) => throw new NotSupportedException();

        public ValueTask<ILatestPages> ReadLatestEachAsync(string room, ulong afterSeq, ulong upToSeq, int maxRooms, CancellationToken cancellationToken) =>
            throw new NotSupportedException();
    }
}
