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
/// A pattern's live sequencing (RoomSequence's remarks): a message lost on the worker's side of its subscription (a
/// full buffer, a dropped connection) is read from the stream before the next one, so the dispatch stays complete and in
/// stream order although the rooms' own <c>Nats-Last-Sequence</c> chains cannot show the gap. The stream here is a list
/// (what is stored), the feed is the test calling <see cref="RoomSequence.OnLiveAsync"/>; the integration tests run the
/// same paths against nats-server.
/// </summary>
public sealed class PatternSequenceTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly StoredLog _log = new();
    private readonly Member _member = new();
    private readonly Room _room;

    public PatternSequenceTests()
    {
        var metrics = new BridgeMetrics(_services.GetRequiredService<IMeterFactory>(), TimeProvider.System);
        _room = new Room("site.>", new RoomServices(null!, _log, metrics, NullLogger.Instance));
        Assert.True(_room.TryAdd(_member));
    }

    public void Dispose() => _services.Dispose();

    private async Task LiveAsync(ulong seq)
    {
        var stored = _log.Messages.Single(m => m.Seq == seq);
        var previous = _log.Messages.Where(m => m.Room == stored.Room && m.Seq < seq).Select(m => m.Seq).DefaultIfEmpty(0UL).Max();
        await _room.Sequence.OnLiveAsync(Message(stored.Room, seq, previous));
    }

    [Fact]
    public async Task A_message_its_buffer_dropped_is_read_from_the_stream_before_the_next_one()
    {
        _log.Store("site.a", "site.b", "site.a", "site.c", "site.b"); // seqs 1..5
        await LiveAsync(1);
        await LiveAsync(2);

        // 3 (site.a) and 4 (site.c) never reach the pump; 5's own room chain (site.b: 2 then 5) shows no gap.
        _room.Sequence.MarkDropped(3);
        _room.Sequence.MarkDropped(4);
        await LiveAsync(5);
        Assert.Equal([1UL, 2, 3, 4, 5], _member.Received);
        Assert.Equal(1, _log.Reads);
    }

    [Fact]
    public async Task A_message_after_a_dropped_one_that_was_already_in_the_buffer_goes_out_without_a_read()
    {
        _log.Store("site.a", "site.b", "site.c"); // 1..3
        await LiveAsync(1);
        _room.Sequence.MarkDropped(3); // dropped after 2 was buffered
        await LiveAsync(2);
        Assert.Equal(0, _log.Reads);
        _log.Store("site.a"); // 4
        await LiveAsync(4);
        Assert.Equal([1UL, 2, 3, 4], _member.Received);
        Assert.Equal(1, _log.Reads);
    }

    [Fact]
    public async Task Messages_dropped_at_the_end_of_a_burst_are_read_once_the_buffer_is_drained()
    {
        _log.Store("site.a", "site.b", "site.c"); // 1..3
        await LiveAsync(1);
        _room.Sequence.MarkDropped(2);
        _room.Sequence.MarkDropped(3);
        await _room.Sequence.FillDroppedAsync();
        Assert.Equal([1UL, 2, 3], _member.Received);

        // Nothing dropped since: draining again reads nothing.
        var reads = _log.Reads;
        await _room.Sequence.FillDroppedAsync();
        Assert.Equal(reads, _log.Reads);
    }

    [Fact]
    public async Task A_drop_reported_after_later_messages_went_out_is_still_filled_in_stream_order_once_the_buffer_was_seen_full()
    {
        _log.Store("site.a", "site.b", "site.c", "site.a", "site.b"); // 1..5
        await LiveAsync(1);

        // The pump found the buffer full (2 and 3 dropped); NATS.Net's drop report has not come yet when 4 is read.
        _room.Sequence.MarkOverflowed();
        await LiveAsync(4);
        Assert.Equal([1UL, 2, 3, 4, 5], _member.Received);

        // The report comes late: nothing is read or sent again; 5, buffered before, is skipped.
        _room.Sequence.MarkDropped(2);
        _room.Sequence.MarkDropped(3);
        var reads = _log.Reads;
        await LiveAsync(5);
        await _room.Sequence.FillDroppedAsync();
        Assert.Equal(reads, _log.Reads);
        Assert.Equal([1UL, 2, 3, 4, 5], _member.Received);
    }

    [Fact]
    public async Task A_buffer_seen_full_at_the_end_of_a_burst_is_caught_up_once_drained()
    {
        _log.Store("site.a", "site.b", "site.c"); // 1..3
        await LiveAsync(1);
        _room.Sequence.MarkOverflowed();
        await _room.Sequence.FillDroppedAsync();
        Assert.Equal([1UL, 2, 3], _member.Received);

        var reads = _log.Reads;
        await _room.Sequence.FillDroppedAsync();
        Assert.Equal(reads, _log.Reads);
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
        await _room.Sequence.OnLiveAsync(Message("site.b", 5, previous: 2));
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
        await Assert.ThrowsAnyAsync<InvalidOperationException>(() => LiveAsync(3));
        Assert.Equal([1UL], _member.Received);

        _log.Failing = false;
        _log.Store("site.a"); // 4
        await _room.Sequence.OnLiveAsync(Message("site.a", 4, previous: 1));
        Assert.Equal([1UL, 2, 3, 4], _member.Received);
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

        public void Store(params string[] rooms)
        {
            foreach (var room in rooms)
            {
                Messages.Add((room, (ulong)Messages.Count + 1));
            }
        }

        private IEnumerable<(string Room, ulong Seq)> Of(string name) =>
            RoomPattern.TryParse(name, out var pattern) ? Messages.Where(m => pattern!.Matches(m.Room)) : [];

        public ValueTask<ulong> GetLastSeqAsync(string room, CancellationToken cancellationToken) =>
            Failing ? throw new InvalidOperationException("the stream is unreachable") : ValueTask.FromResult(Of(room).Select(m => m.Seq).DefaultIfEmpty(0UL).Max());

        public ValueTask<bool> IsStoredInRoomAsync(string room, ulong seq, CancellationToken cancellationToken) =>
            ValueTask.FromResult(Of(room).Any(m => m.Seq == seq));

        public async IAsyncEnumerable<RoomMessage> ReadAsync(
            string room, ulong afterSeq, ulong? upToSeq, [EnumeratorCancellation] CancellationToken cancellationToken, ulong mustReach = 0, ReadLimit limit = default,
            DropCheck? check = null)
        {
            Reads++;
            await Task.Yield();
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
