using System.Diagnostics;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Nats;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.DependencyInjection;
using NATS.Client.Core;
using static Bridge.Tests.Infrastructure.BatchJoins;

namespace Bridge.Tests.Integration;

/// <summary>
/// Batch <c>room.join</c>s whose rooms are opened while nats-server is frozen (SIGSTOP): each entry answers
/// <c>unavailable</c>, the worker's batch opens are all free again, no room or subscription is left, also of a connection
/// closed while its batch waited; once the server answers, a batch joins. The same with the server killed (the worker
/// reconnecting) and started again. Its own nats-server, since it freezes and kills it.
/// </summary>
public sealed class BatchActivationOutageTests : IAsyncLifetime
{
    private NatsServerProcess _nats = null!;

    public async Task InitializeAsync() => _nats = await NatsServerProcess.StartAsync();

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    [Fact]
    public async Task Batches_while_the_server_is_frozen_answer_unavailable_free_their_opens_leave_nothing_and_a_later_batch_joins()
    {
        const int clients = 6; // more than the worker's 4 batch opens at once
        const int perClient = 20;
        await using var worker = await WorkerHost.StartAsync(_nats);
        var registry = worker.Get<RoomRegistry>();
        var timeout = worker.Get<NatsContext>().Connection.Opts.RequestTimeout;
        var shared = Names.Room("bo");
        var own = Enumerable.Range(0, clients).Select(_ => Enumerable.Range(0, perClient).Select(_ => Names.Room("bo")).ToList()).ToList();
        var connections = await ConnectAsync(worker, clients);

        await using var closing = (await ConnectAsync(worker, 1))[0];
        var closingRooms = Enumerable.Range(0, perClient).Select(_ => Names.Room("bo")).Append(shared).ToList();

        _nats.Signal("STOP");
        var answered = new List<TimeSpan>();
        try
        {
            var clock = Stopwatch.StartNew();
            for (var i = 0; i < clients; i++)
            {
                await connections[i].SendAsync(Batch($"b{i}", own[i].Append(shared)));
            }

            // One more connection's batch, sent after the others, waits for a batch open and is closed meanwhile.
            await Task.Delay(300);
            await closing.SendAsync(Batch("c", closingRooms));
            await Task.Delay(500);
            closing.Abort();

            // Each connection's answers are timed as they come, all connections at once.
            var timed = await Task.WhenAll(connections.Select(async client =>
            {
                var answers = await client.JoinAnswersAsync(perClient + 1, TimeSpan.FromSeconds(90));
                var at = clock.Elapsed;
                Assert.All(answers, f => Assert.Equal(ErrorCodes.Unavailable, f.ErrorCode));
                return at;
            }));
            answered.AddRange(timed);

            // Nothing left while still frozen: no room, every batch open free.
            await Eventually.TrueAsync(() => registry.ActiveRooms == 0, TimeSpan.FromSeconds(30), "rooms left active");
            await Eventually.TrueAsync(() => registry.BatchOpensFree == 4, TimeSpan.FromSeconds(30), $"batch opens free: {registry.BatchOpensFree}");
        }
        finally
        {
            _nats.Signal("CONT");
        }

        // No subscription of any of these rooms stays on the server.
        var ours = own.SelectMany(r => r).Concat(closingRooms).ToHashSet(StringComparer.Ordinal);
        await NoSubscriptionLeftAsync(worker, ours);

        // The 4 batches that took a batch open at once are answered at the request timeout, not later (a batch whose ask
        // sent the worker's last-seq requests went on sending the asks that came meanwhile before its own answer: another
        // timeout each); the 2 that waited for a batch open, one timeout later.
        Assert.True(answered.Count(a => a < timeout * 1.6) >= 4, string.Join(", ", answered));
        Assert.True(answered.Max() < timeout * 2.6, string.Join(", ", answered));

        // The server answers again: the same batch joins and goes live.
        var again = connections[0];
        await again.SendAsync(Batch("again", own[0].Append(shared)));
        var joined = await again.JoinAnswersAsync(perClient + 1, TimeSpan.FromSeconds(30));
        Assert.All(joined, f => Assert.Equal(MessageTypes.RoomJoined, f.Type));
        var stored = await Store.PublishAsync(_nats, [shared, own[0][0]]);
        var live = await again.CollectAsync(2, f => f.Type == Store.Type, TimeSpan.FromSeconds(15));
        Assert.Equal(stored.Select(s => s.Seq).Order(), live.Select(f => f.Seq).Order());
        Assert.Equal(perClient + 1, registry.ActiveRooms);

        await DisposeAllAsync(connections);
    }

    [Fact]
    public async Task Batches_of_connections_closed_while_their_feeds_open_keep_their_batch_open_until_the_opens_end()
    {
        // Each connection leaves its batch while the frozen server holds its opens (up to the request timeout): the
        // opens go on, and so does each batch's place among the worker's 4 (its clean-up closes the rooms' feeds, which
        // waits for their opens), or every close would let one more open start.
        const int clients = 8;
        var feeds = new CountingFeeds();
        await using var worker = await feeds.StartWorkerAsync(_nats);
        var registry = worker.Get<RoomRegistry>();
        var connections = await ConnectAsync(worker, clients);

        var rooms = new List<string>();
        _nats.Signal("STOP");
        try
        {
            foreach (var client in connections)
            {
                var batch = Enumerable.Range(0, 10).Select(_ => Names.Room("bk")).ToList();
                rooms.AddRange(batch);
                await client.SendAsync(Batch("b", batch));
                await Task.Delay(250);
                client.Abort();
            }

            await Task.Delay(500);
            Assert.True(feeds.MostAtOnce <= 4, $"{feeds.MostAtOnce} batch opens under way at once");
        }
        finally
        {
            _nats.Signal("CONT");
        }

        await feeds.AllEndedAsync(registry);
        var ours = rooms.ToHashSet(StringComparer.Ordinal);
        await NoSubscriptionLeftAsync(worker, ours);
        await DisposeAllAsync(connections);
    }

    [Fact]
    public async Task Batches_closed_while_their_feeds_open_keep_their_batch_open_also_when_other_connections_wait_in_all_their_rooms()
    {
        // As above, but another connection joins each batch's rooms while the batch opens them: leaving those rooms does
        // not wait for their opens (the other connection is still in them), so a closed batch freed its place at once.
        const int clients = 8;
        var feeds = new CountingFeeds();
        await using var worker = await feeds.StartWorkerAsync(_nats);
        var registry = worker.Get<RoomRegistry>();
        var connections = await ConnectAsync(worker, clients);
        var sharers = await ConnectAsync(worker, clients);

        _nats.Signal("STOP");
        try
        {
            for (var i = 0; i < clients; i++)
            {
                var batch = Enumerable.Range(0, 2).Select(_ => Names.Room("bs")).ToList();
                await connections[i].SendAsync(Batch("b", batch));
                await Task.Delay(150);
                foreach (var room in batch)
                {
                    await sharers[i].JoinAsync(room);
                }

                await Task.Delay(150);
                connections[i].Abort();
            }

            await Task.Delay(300);
            Assert.True(feeds.MostAtOnce <= 4, $"{feeds.MostAtOnce} batch opens under way at once");
        }
        finally
        {
            _nats.Signal("CONT");
        }

        await DisposeAllAsync(connections.Concat(sharers));

        await feeds.AllEndedAsync(registry);
    }

    [Fact]
    public async Task Batches_met_by_a_killed_server_answer_each_entry_within_the_bound_leave_nothing_and_after_its_restart_get_every_message_once()
    {
        // Killed, not frozen: the worker sees its socket close and reconnects in a loop. A subscribe waits for the
        // connection, so an open that is not bounded waits for the restart: entries unanswered, batch opens taken.
        const int clients = 6; // more than the worker's 4 batch opens at once
        const int perClient = 20;
        await using var worker = await WorkerHost.StartAsync(_nats);
        var registry = worker.Get<RoomRegistry>();
        var connection = worker.Get<NatsContext>().Connection;
        var timeout = connection.Opts.RequestTimeout;
        var shared = Names.Room("bx");
        var own = Enumerable.Range(0, clients).Select(_ => Enumerable.Range(0, perClient).Select(_ => Names.Room("bx")).ToList()).ToList();
        var connections = await ConnectAsync(worker, clients);

        // And a single join, after the kill: its open is bounded the same way.
        await using var single = (await ConnectAsync(worker, 1))[0];
        var alone = Names.Room("bx");

        // Half the batches sent before the kill (they may be joined, or be met by it), half after it.
        var clock = Stopwatch.StartNew();
        var answers = new Task<List<Frame>>[clients];
        for (var i = 0; i < clients; i++)
        {
            if (i == clients / 2)
            {
                _nats.Kill();
            }

            await connections[i].SendAsync(Batch($"b{i}", own[i].Append(shared)));
            var client = connections[i];
            answers[i] = client.JoinAnswersAsync(perClient + 1, TimeSpan.FromSeconds(60));
        }

        await single.JoinAsync(alone);
        Assert.Equal(ErrorCodes.Unavailable, (await single.WaitForAsync(f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error, TimeSpan.FromSeconds(60))).ErrorCode);

        // Every entry answered while the server is still down: joined, or unavailable at the request timeout (the
        // batches that waited for a batch open, one timeout later).
        var joined = new List<Dictionary<string, ulong>>();
        for (var i = 0; i < clients; i++)
        {
            var got = await answers[i];
            Assert.All(got, f => Assert.True(f.Type == MessageTypes.RoomJoined || f.ErrorCode == ErrorCodes.Unavailable, f.ToString()));
            Assert.Equal(own[i].Append(shared).Order(), got.Select(f => f.Room!).Order());
            joined.Add(got.Where(f => f.Type == MessageTypes.RoomJoined).ToDictionary(f => f.Room!, f => f.Seq));
        }

        var answeredAt = clock.Elapsed;
        Assert.True(answeredAt < timeout * 2.6, $"answered after {answeredAt}, the request timeout is {timeout}");
        Assert.NotEqual(NatsConnectionState.Open, connection.ConnectionState);
        // After the kill only a room whose feed was open already can be joined (the shared one, joined before it).
        Assert.True(joined.Skip(clients / 2).All(j => j.Keys.All(r => r == shared)), "a room opened after the kill");

        // Nothing left while down: a room only for the connections in it, every batch open free.
        var inRooms = joined.SelectMany(j => j.Keys).ToHashSet(StringComparer.Ordinal);
        await Eventually.TrueAsync(() => registry.ActiveRooms == inRooms.Count, TimeSpan.FromSeconds(10), $"rooms active: {registry.ActiveRooms}, joined: {inRooms.Count}");
        await Eventually.TrueAsync(() => registry.BatchOpensFree == 4, TimeSpan.FromSeconds(10), $"batch opens free: {registry.BatchOpensFree}");

        // The server back: the worker subscribes to the rooms joined, and to no other.
        await _nats.RestartAsync(TimeSpan.Zero);
        await Eventually.TrueAsync(() => connection.ConnectionState == NatsConnectionState.Open, TimeSpan.FromSeconds(30), "the worker did not reconnect");
        var ours = own.SelectMany(r => r).Append(shared).ToHashSet(StringComparer.Ordinal);
        var seen = ours.Append(alone).ToHashSet(StringComparer.Ordinal);
        await Eventually.TrueAsync(
            async () => (await RoomsSubscribedAsync(worker)).Intersect(seen).ToHashSet(StringComparer.Ordinal).SetEquals(inRooms),
            TimeSpan.FromSeconds(30), "the server's subscriptions are not those of the rooms joined");
        Assert.Equal(inRooms.Count, registry.ActiveRooms);

        // Each connection joins again what it was refused: all joined now.
        for (var i = 0; i < clients; i++)
        {
            var refused = own[i].Append(shared).Where(r => !joined[i].ContainsKey(r)).ToList();
            if (refused.Count == 0)
            {
                continue;
            }

            await connections[i].SendAsync(Batch($"again{i}", refused));
            var again = await connections[i].JoinAnswersAsync(refused.Count, TimeSpan.FromSeconds(30));
            Assert.All(again, f => Assert.Equal(MessageTypes.RoomJoined, f.Type));
            foreach (var f in again)
            {
                joined[i][f.Room!] = f.Seq;
            }
        }

        Assert.Equal(ours.Count, registry.ActiveRooms);
        Assert.Equal(4, registry.BatchOpensFree);

        // Every message after each room.joined's seq comes once: one stored in each room now.
        var stored = await Store.PublishAsync(_nats, ours);
        for (var i = 0; i < clients; i++)
        {
            var expected = stored.Where(s => joined[i].TryGetValue(s.Room, out var seq) && s.Seq > seq).Select(s => s.Seq).Order().ToList();
            Assert.Equal(perClient + 1, expected.Count);
            var live = await connections[i].CollectAsync(expected.Count, f => f.Type == Store.Type, TimeSpan.FromSeconds(15));
            Assert.Equal(expected, live.Select(f => f.Seq).Order());
        }

        Assert.True(await connections[0].NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromSeconds(1)), "a message came twice");
        foreach (var client in connections)
        {
            Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(100)), "a message came twice");
            await client.DisposeAsync();
        }
    }

    /// <summary>The worker's feed factory, with the batch opens (<see cref="IRoomFeedFactory.OpenManyAsync"/>) under way counted.</summary>
    private sealed class CountingFeeds
    {
        private int _underWay;
        private int _most;

        public int UnderWay => Volatile.Read(ref _underWay);

        public int MostAtOnce => Volatile.Read(ref _most);

        /// <summary>A worker on <paramref name="nats"/> whose batch opens these count.</summary>
        public Task<WorkerHost> StartWorkerAsync(NatsServerProcess nats) => WorkerHost.StartAsync(
            nats, b => b.Services.AddSingleton<IRoomFeedFactory>(sp => new Factory(this, sp.GetRequiredService<NatsRoomFeedFactory>())));

        /// <summary>Waits until no batch open is under way, every one of the worker's 4 is free and no room is left.</summary>
        public Task AllEndedAsync(RoomRegistry registry) =>
            Eventually.TrueAsync(() => UnderWay == 0 && registry.BatchOpensFree == 4 && registry.ActiveRooms == 0, TimeSpan.FromSeconds(60),
                $"opens under way {UnderWay}, batch opens free {registry.BatchOpensFree}, rooms {registry.ActiveRooms}");

        private sealed class Factory(CountingFeeds owner, NatsRoomFeedFactory inner) : IRoomFeedFactory
        {
            public int BacklogCapacity => inner.BacklogCapacity;

            public ValueTask<IAsyncDisposable> OpenAsync(Room room, CancellationToken cancellationToken) => inner.OpenAsync(room, cancellationToken);

            public async ValueTask<FeedOpen[]> OpenManyAsync(IReadOnlyList<Room> rooms)
            {
                var now = Interlocked.Increment(ref owner._underWay);
                var most = Volatile.Read(ref owner._most);
                while (now > most && Interlocked.CompareExchange(ref owner._most, now, most) != most)
                {
                    most = Volatile.Read(ref owner._most);
                }

                try
                {
                    return await inner.OpenManyAsync(rooms);
                }
                finally
                {
                    Interlocked.Decrement(ref owner._underWay);
                }
            }
        }
    }

    /// <summary><paramref name="count"/> connections to <paramref name="worker"/>, each welcomed.</summary>
    private static async Task<List<TestClient>> ConnectAsync(WorkerHost worker, int count)
    {
        var connections = new List<TestClient>();
        for (var i = 0; i < count; i++)
        {
            var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
            connections.Add(client);
            await client.FirstFrame;
        }

        return connections;
    }

    private static async Task DisposeAllAsync(IEnumerable<TestClient> connections)
    {
        foreach (var client in connections)
        {
            await client.DisposeAsync();
        }
    }

    /// <summary>Waits until the server holds no subscription of the worker's to any of <paramref name="rooms"/>.</summary>
    private Task NoSubscriptionLeftAsync(WorkerHost worker, HashSet<string> rooms) =>
        Eventually.TrueAsync(async () => !(await RoomsSubscribedAsync(worker)).Overlaps(rooms), TimeSpan.FromSeconds(30), "subscriptions left on the server");

    /// <summary>The rooms the worker's connection is subscribed to on the server (their live subjects' room names).</summary>
    private async Task<HashSet<string>> RoomsSubscribedAsync(WorkerHost worker) =>
        (await _nats.SubscriptionsOfAsync(worker.Id)).Where(s => s.Contains(".rooms.", StringComparison.Ordinal))
            .Select(s => s[(s.IndexOf(".rooms.", StringComparison.Ordinal) + 7)..]).ToHashSet(StringComparer.Ordinal);
}
