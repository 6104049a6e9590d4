using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Nats;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.DependencyInjection;
using static Bridge.Tests.Infrastructure.BatchJoins;

namespace Bridge.Tests.Integration;

/// <summary>
/// A batch <c>room.join</c>'s plain live entries are activated as one unit (their feeds subscribed at once, their last
/// seqs asked in one batched ask, the joins completed in one loop; <c>bridge.joins.batched</c> counts them), with every
/// guarantee of a join alone: no gap and no duplicate at each room's seam, a room that cannot be opened answers its own
/// error and never stops the others, a leave or a close while joining leaves nothing behind (docs/protocol.md §4).
/// </summary>
public sealed class BatchActivationTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private const string Batched = "bridge.joins.batched";

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_batch_joined_while_its_rooms_are_published_into_gets_each_message_after_its_rooms_room_joined_once_and_none_before(string protocol)
    {
        const int rooms = 300;
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        using var meters = new WorkerMeters(worker);
        var names = Enumerable.Range(0, rooms).Select(_ => Names.Room("ba")).ToList();

        // A third of the rooms are active on the worker already (another connection is in them): no open, seam as is.
        await using var other = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await other.FirstFrame;
        await other.SendAsync(Batch("warm", names.Take(rooms / 3)));
        await other.CollectAsync(rooms / 3, f => f.Type == MessageTypes.RoomJoined, TimeSpan.FromSeconds(30));

        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await client.FirstFrame;

        // A backend stores into every room, round after round, from before the batch until after its last room.joined.
        using var stop = new CancellationTokenSource();
        var published = new List<(string Room, ulong Seq)>();
        var firstRound = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var publishing = Task.Run(async () =>
        {
            // Two full rounds once every room.joined came (the last one wholly after every seam).
            var roundsAfter = 0;
            while (roundsAfter < 2)
            {
                var last = stop.IsCancellationRequested;
                var stored = await Store.PublishManyAsync(nats.Server, names);
                lock (published)
                {
                    published.AddRange(stored);
                }

                roundsAfter += last ? 1 : 0;
                firstRound.TrySetResult();
            }
        });
        await firstRound.Task.WaitAsync(TimeSpan.FromSeconds(30));
        await client.SendAsync(Batch("b", names));

        var joinedAt = new Dictionary<string, ulong>(StringComparer.Ordinal);
        var received = names.ToDictionary(n => n, _ => new List<ulong>(), StringComparer.Ordinal);
        var beforeJoined = new List<string>();
        var errors = new List<string>();
        void Take(Frame frame)
        {
            switch (frame.Type)
            {
                case MessageTypes.RoomJoined:
                    joinedAt[frame.Room!] = frame.Seq;
                    break;
                case MessageTypes.Error:
                    errors.Add($"{frame.Room} {frame.ErrorCode}");
                    break;
                case Store.Type:
                    if (!joinedAt.ContainsKey(frame.Room!))
                    {
                        beforeJoined.Add(frame.Room!);
                    }

                    received[frame.Room!].Add(frame.Seq);
                    break;
            }
        }

        while (joinedAt.Count < rooms && errors.Count == 0)
        {
            Take(await client.NextAsync(TimeSpan.FromSeconds(30)));
        }

        await stop.CancelAsync();
        await publishing;
        var expected = published.Where(p => joinedAt.TryGetValue(p.Room, out var at) && p.Seq > at).ToList();
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
        while (received.Sum(r => r.Value.Count) < expected.Count && DateTime.UtcNow < deadline)
        {
            try
            {
                Take(await client.NextAsync(TimeSpan.FromSeconds(5)));
            }
            catch (TimeoutException)
            {
                break;
            }
        }

        Assert.Empty(errors);
        Assert.Equal(rooms, joinedAt.Count);
        Assert.Empty(beforeJoined);
        // Messages stored after the seams were taken (the later rounds) and, in many rooms, some stored while the feeds
        // were opening: each room's are exactly those after its room.joined seq, in order, once each.
        foreach (var room in names)
        {
            var want = expected.Where(p => p.Room == room).Select(p => p.Seq).Order().ToList();
            Assert.Equal(want, received[room]);
        }

        Assert.True(expected.Count >= rooms, $"only {expected.Count} messages were stored after the seams");
        Assert.Equal(rooms, meters.Total(Batched) - rooms / 3); // this batch's joins all went as one unit (and the first batch's)
        // Each seam exactly where its feed began: no message was missing from a feed (a seam one too low is a hole the
        // sequence fills from the stream, which the order check alone cannot tell from a correct one).
        Assert.Equal(0, meters.Total("bridge.gap.fills"));
        // And each room.joined seq is the room's position then: the seq of a message stored in that room (a seam one too
        // high is, with the rooms' messages interleaved in the stream, some other room's seq).
        var storedIn = published.ToHashSet();
        Assert.All(names, room => Assert.Contains((room, joinedAt[room]), storedIn));
    }

    [Fact]
    public async Task Rooms_whose_last_seq_cannot_be_read_answer_unavailable_each_and_the_batchs_other_rooms_join_and_go_live()
    {
        var failing = new FailingLastSeqs();
        await using var worker = await WorkerHost.StartAsync(
            nats.Server, b => b.Services.AddSingleton<IRoomLog>(sp => failing.Wrap(sp.GetRequiredService<RoomHistory>())));
        using var meters = new WorkerMeters(worker);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.FirstFrame;
        var good = Enumerable.Range(0, 40).Select(_ => Names.Room("ok")).ToList();
        var bad = Enumerable.Range(0, 10).Select(_ => Names.Room("bad")).ToList();
        var forbiddenShape = new Dictionary<string, object?> { ["room"] = 7 };
        var batch = Batch("b", good.Concat(bad).OrderBy(_ => Random.Shared.Next()));
        ((List<object?>)((Dictionary<string, object?>)batch["payload"]!)["rooms"]!).Insert(5, forbiddenShape);
        await client.SendAsync(batch);

        var answers = await client.JoinAnswersAsync(good.Count + bad.Count + 1, TimeSpan.FromSeconds(30));
        Assert.Equal(good.Order(), answers.Where(f => f.Type == MessageTypes.RoomJoined).Select(f => f.Room!).Order());
        var errors = answers.Where(f => f.Type == MessageTypes.Error).ToList();
        Assert.Equal(bad.Order(), errors.Where(e => e.ErrorCode == ErrorCodes.Unavailable).Select(e => e.Room!).Order());
        Assert.Single(errors, e => e.ErrorCode == ErrorCodes.InvalidRoom);
        Assert.All(errors, e => Assert.Equal("b", e.Payload!["ref"]!.GetValue<string>()));

        // The seams were asked for together, not one room at a time; the rooms that failed are not active.
        Assert.True(failing.LargestBatch >= good.Count + bad.Count, $"largest batched ask: {failing.LargestBatch} rooms");
        Assert.Equal(0, failing.SingleAsks);
        Assert.Equal(good.Count + bad.Count, meters.Total(Batched));
        var registry = worker.Get<RoomRegistry>();
        Assert.Equal(good.Count, registry.ActiveRooms);
        Assert.All(bad, room => Assert.False(registry.TryGet(room, out _)));

        // The rooms that joined are live: a message stored now comes once; a failed room can be joined again once it reads.
        var stored = await Store.PublishAsync(nats.Server, [good[0], good[^1]]);
        var live = await client.CollectAsync(2, f => f.Type == Store.Type, TimeSpan.FromSeconds(15));
        Assert.Equal(stored.Select(s => s.Seq).Order(), live.Select(f => f.Seq).Order());
        failing.Heal();
        await client.SendAsync(Batch("again", bad));
        var again = await client.JoinAnswersAsync(bad.Count, TimeSpan.FromSeconds(30));
        Assert.All(again, f => Assert.Equal(MessageTypes.RoomJoined, f.Type));
    }

    [Fact]
    public async Task A_leave_sent_right_after_a_batch_join_leaves_its_room_with_no_room_joined_after_room_left_and_nothing_delivered()
    {
        const int rooms = 400;
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        using var meters = new WorkerMeters(worker);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.FirstFrame;
        var names = Enumerable.Range(0, rooms).Select(_ => Names.Room("bl")).ToList();
        var leaving = names.Where((_, i) => i % 4 == 0).ToHashSet(StringComparer.Ordinal);
        await client.SendAsync(Batch("b", names));
        foreach (var room in leaving)
        {
            await client.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = room });
        }

        var joined = new HashSet<string>(StringComparer.Ordinal);
        var left = new HashSet<string>(StringComparer.Ordinal);
        var joinedAfterLeft = new List<string>();
        while (left.Count < leaving.Count || joined.Count(r => !leaving.Contains(r)) < rooms - leaving.Count)
        {
            var frame = await client.NextAsync(TimeSpan.FromSeconds(30));
            Assert.NotEqual(MessageTypes.Error, frame.Type);
            if (frame.Type == MessageTypes.RoomJoined)
            {
                if (left.Contains(frame.Room!))
                {
                    joinedAfterLeft.Add(frame.Room!);
                }

                joined.Add(frame.Room!);
            }
            else if (frame.Type == MessageTypes.RoomLeft)
            {
                left.Add(frame.Room!);
            }
        }

        Assert.Empty(joinedAfterLeft);
        Assert.Equal(leaving.Order(), left.Order());
        var registry = worker.Get<RoomRegistry>();
        await Eventually.TrueAsync(() => registry.ActiveRooms == rooms - leaving.Count, TimeSpan.FromSeconds(10), "the left rooms closed");
        Assert.All(leaving, room => Assert.False(registry.TryGet(room, out _)));
        Assert.True(meters.Total(Batched) > 0, "the batch went as one unit");

        // Nothing of a left room comes; the others are live.
        var stay = names.First(n => !leaving.Contains(n));
        await Store.PublishAsync(nats.Server, [.. leaving.Take(5), stay]);
        var next = await client.WaitForAsync(f => f.Type == Store.Type, TimeSpan.FromSeconds(15));
        Assert.Equal(stay, next.Room);
    }

    [Fact]
    public async Task A_connection_closed_while_its_batch_joins_leaves_no_room_active()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        using var meters = new WorkerMeters(worker);
        var registry = worker.Get<RoomRegistry>();
        for (var attempt = 0; attempt < 5; attempt++)
        {
            await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
            await client.FirstFrame;
            await client.SendAsync(Batch("b", Enumerable.Range(0, 1000).Select(_ => Names.Room("bc"))));
            // Closed at once: mid-open, mid-completion or just after, depending on the machine.
            await Eventually.TrueAsync(() => registry.ActiveRooms > 0, TimeSpan.FromSeconds(10));
            client.Abort();
            await Eventually.TrueAsync(() => registry.ActiveRooms == 0, TimeSpan.FromSeconds(30), $"attempt {attempt}: rooms left active");
        }

        Assert.True(meters.Total(Batched) > 0, "the batches went as one unit");
    }

    /// <summary>
    /// The worker's stream (<see cref="RoomHistory"/>) with the last seq of rooms named <c>bad.*</c> failing until
    /// <see cref="Heal"/>, and the size of the batched asks counted.
    /// </summary>
    private sealed class FailingLastSeqs
    {
        private volatile bool _healed;
        private int _largest;
        private int _single;

        public int LargestBatch => Volatile.Read(ref _largest);

        public int SingleAsks => Volatile.Read(ref _single);

        public void Heal() => _healed = true;

        public IRoomLog Wrap(RoomHistory history) => new Log(this, history);

        private bool Fails(string room) => !_healed && room.StartsWith("bad.", StringComparison.Ordinal);

        private sealed class Log(FailingLastSeqs owner, RoomHistory inner) : IRoomLog
        {
            public ValueTask<ulong> GetLastSeqAsync(string room, CancellationToken cancellationToken)
            {
                Interlocked.Increment(ref owner._single);
                return owner.Fails(room) ? ValueTask.FromException<ulong>(new InvalidOperationException("test: no last seq")) : inner.GetLastSeqAsync(room, cancellationToken);
            }

            public async ValueTask<LastSeq[]> GetLastSeqsAsync(IReadOnlyList<string> rooms, CancellationToken cancellationToken)
            {
                var largest = Volatile.Read(ref owner._largest);
                while (rooms.Count > largest && Interlocked.CompareExchange(ref owner._largest, rooms.Count, largest) != largest)
                {
                    largest = Volatile.Read(ref owner._largest);
                }

                var seqs = await inner.GetLastSeqsAsync(rooms, cancellationToken);
                for (var i = 0; i < rooms.Count; i++)
                {
                    if (owner.Fails(rooms[i]))
                    {
                        seqs[i] = new LastSeq(0, new InvalidOperationException("test: no last seq"));
                    }
                }

                return seqs;
            }

            public ValueTask<bool> IsStoredInRoomAsync(string room, ulong seq, CancellationToken cancellationToken) =>
                inner.IsStoredInRoomAsync(room, seq, cancellationToken);

            public IAsyncEnumerable<RoomMessage> ReadAsync(
                string room, ulong afterSeq, ulong? upToSeq, CancellationToken cancellationToken, ulong mustReach = 0, ReadLimit limit = default, DropCheck? check = null) =>
                inner.ReadAsync(room, afterSeq, upToSeq, cancellationToken, mustReach, limit, check);

            public IRoomCursor OpenCursor(string room) => inner.OpenCursor(room);

            public ValueTask<ILatestPages> ReadLatestEachAsync(string room, ulong afterSeq, ulong upToSeq, int maxRooms, CancellationToken cancellationToken) =>
                inner.ReadLatestEachAsync(room, afterSeq, upToSeq, maxRooms, cancellationToken);
        }
    }
}
