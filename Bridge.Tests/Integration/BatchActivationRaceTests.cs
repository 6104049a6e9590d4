using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Rooms;
using static Bridge.Tests.Infrastructure.BatchJoins;

namespace Bridge.Tests.Integration;

/// <summary>
/// A batch <c>room.join</c>'s live joins activated as one unit (<see cref="BatchActivationTests"/>) racing other joins of
/// the same rooms, repeating its own entries, outgrowing the connection's room limit or its send queue: every entry is
/// answered once (<c>room.joined</c> or its documented error), each room has one feed, nothing is left behind.
/// </summary>
public sealed class BatchActivationRaceTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    /// <summary>
    /// A worker whose send queue holds 64 frames of room messages, and a client of it that sends one batch of 1,000 new
    /// rooms (all answered before this returns).
    /// </summary>
    private async Task<(WorkerAndClient Run, List<string> Names, List<Frame> Answers)> ThousandRoomsOnASmallQueueAsync()
    {
        const int rooms = 1000;
        var run = await WorkerAndClient.StartAsync(nats.Server, ("Bridge:Connections:SendQueueCapacity", "64"));
        var names = Enumerable.Range(0, rooms).Select(_ => Names.Room("bq")).ToList();
        await run.Client.SendAsync(Batch("b", names));
        return (run, names, await run.Client.JoinAnswersAsync(rooms, TimeSpan.FromSeconds(60)));
    }

    [Fact]
    public async Task A_batch_of_more_live_joins_than_the_send_queue_holds_gets_every_room_joined_and_keeps_its_connection()
    {
        // 64 frames of room messages and a quarter more for answers: 1,000 room.joined queued in one loop overflowed it
        // and closed the connection as a slow consumer (4008), though the client read all along.
        var (run, names, answers) = await ThousandRoomsOnASmallQueueAsync();
        await using var _ = run;
        var client = run.Client;
        Assert.All(answers, f => Assert.Equal(MessageTypes.RoomJoined, f.Type));
        Assert.Equal(names.Order(), answers.Select(f => f.Room!).Order());
        Assert.Null(client.CloseStatus);

        // And live in each: a message stored now comes once.
        var stored = await Store.PublishAsync(nats.Server, [names[0], names[^1]]);
        var live = await client.CollectAsync(2, f => f.Type == Store.Type, TimeSpan.FromSeconds(15));
        Assert.Equal(stored.Select(s => s.Seq).Order(), live.Select(f => f.Seq).Order());
    }

    [Fact]
    public async Task A_batch_of_rooms_the_connection_is_in_already_is_answered_again_in_full_and_keeps_its_connection()
    {
        // Each entry already in is answered room.joined again at once: 1,000 of them overflowed a small queue too (4008).
        var (run, names, _) = await ThousandRoomsOnASmallQueueAsync();
        await using var __ = run;
        var client = run.Client;

        await client.SendAsync(Batch("again", names));
        var again = await client.JoinAnswersAsync(names.Count, TimeSpan.FromSeconds(60));
        Assert.All(again, f => Assert.Equal(MessageTypes.RoomJoined, f.Type));
        Assert.Equal(names.Order(), again.Select(f => f.Room!).Order());
        Assert.Null(client.CloseStatus);
    }

    [Fact]
    public async Task Batches_of_two_connections_and_single_joins_of_a_third_on_the_same_rooms_at_once_open_one_feed_per_room_and_each_gets_every_message_once()
    {
        const int rooms = 300;
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var names = Enumerable.Range(0, rooms).Select(_ => Names.Room("br")).ToList();
        await using var a = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var b = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await using var c = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await Task.WhenAll(a.FirstFrame, b.FirstFrame, c.FirstFrame);

        // a in order, b in reverse, c one join at a time, all sent before any is answered.
        var sends = new List<Task>
        {
            a.SendAsync(Batch("a", names)),
            b.SendAsync(Batch("b", Enumerable.Reverse(names))),
        };
        foreach (var room in names.Where((_, i) => i % 3 == 0))
        {
            sends.Add(c.SendAsync(Store.Join(room, null, id: room)));
        }

        await Task.WhenAll(sends);
        var singles = names.Where((_, i) => i % 3 == 0).ToList();
        foreach (var (client, count) in new[] { (a, rooms), (b, rooms), (c, singles.Count) })
        {
            var answers = await client.JoinAnswersAsync(count, TimeSpan.FromSeconds(60));
            Assert.All(answers, f => Assert.Equal(MessageTypes.RoomJoined, f.Type));
            Assert.Equal(count, answers.Select(f => f.Room).Distinct().Count());
        }

        // One room instance and one subscription per room, whoever opened it.
        var registry = worker.Get<RoomRegistry>();
        Assert.Equal(rooms, registry.ActiveRooms);
        var subscriptions = await nats.Server.SubscriptionsOfAsync(worker.Id);
        var ours = names.ToHashSet(StringComparer.Ordinal);
        var bySubject = subscriptions.Where(s => ours.Contains(s[(s.IndexOf(".rooms.", StringComparison.Ordinal) + 7)..])).GroupBy(s => s).ToList();
        Assert.Equal(rooms, bySubject.Count);
        Assert.All(bySubject, g => Assert.Single(g));

        // A message stored in every room now reaches each connection once per room it is in.
        var stored = await Store.PublishAsync(nats.Server, names);
        foreach (var (client, inRooms) in new[] { (a, names), (b, names), (c, singles) })
        {
            var got = await client.CollectAsync(inRooms.Count, f => f.Type == Store.Type, TimeSpan.FromSeconds(30));
            Assert.Equal(stored.Where(s => inRooms.Contains(s.Room)).Select(s => s.Seq).Order(), got.Select(f => f.Seq).Order());
        }
    }

    [Fact]
    public async Task A_room_named_more_than_once_in_one_batch_is_joined_once_and_answered_once()
    {
        await using var run = await WorkerAndClient.StartAsync(nats.Server);
        var (worker, client) = (run.Worker, run.Client);
        var x = Names.Room("bd");
        var y = Names.Room("bd");
        await client.SendAsync(Batch("b", [x, y, x, x, y]));

        var answers = await client.JoinAnswersAsync(2, TimeSpan.FromSeconds(30));
        Assert.All(answers, f => Assert.Equal(MessageTypes.RoomJoined, f.Type));
        Assert.Equal(new[] { x, y }.Order(), answers.Select(f => f.Room!).Order());
        var registry = worker.Get<RoomRegistry>();
        Assert.True(registry.TryGet(x, out var room));
        Assert.Equal(1, room!.MemberCount);

        // No second answer comes later, and a message comes once.
        var stored = await Store.PublishAsync(nats.Server, [x]);
        var next = await client.WaitForAsync(f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error or Store.Type, TimeSpan.FromSeconds(15));
        Assert.Equal(Store.Type, next.Type);
        Assert.Equal(stored[0].Seq, next.Seq);
        // A join of y again is answered again: the next answer is that one, not a late second one of the batch.
        await client.SendAsync(Store.Join(y, null, id: "again"));
        var again = await client.WaitForAsync(f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error, TimeSpan.FromSeconds(15));
        Assert.Equal(MessageTypes.RoomJoined, again.Type);
        Assert.Equal(y, again.Room);
        Assert.Equal(2, worker.Get<RoomRegistry>().ActiveRooms);
    }

    [Fact]
    public async Task A_batch_that_reaches_the_connections_room_limit_partway_joins_up_to_it_and_refuses_each_entry_after_it()
    {
        await using var run = await WorkerAndClient.StartAsync(nats.Server, ("Bridge:Connections:MaxRoomsPerConnection", "10"), ("Bridge:Connections:MaxPatternsPerConnection", "5"));
        var (worker, client) = (run.Worker, run.Client);
        var first = Enumerable.Range(0, 6).Select(_ => Names.Room("bm")).ToList();
        await client.SendAsync(Batch("one", first));
        await client.CollectAsync(6, f => f.Type == MessageTypes.RoomJoined, TimeSpan.FromSeconds(30));

        // Two already in (answered again), four fit, four do not.
        var more = Enumerable.Range(0, 8).Select(_ => Names.Room("bm")).ToList();
        await client.SendAsync(Batch("two", [first[0], .. more.Take(4), first[1], .. more.Skip(4)]));
        var answers = await client.JoinAnswersAsync(10, TimeSpan.FromSeconds(30));
        Assert.Equal(new[] { first[0], first[1] }.Concat(more.Take(4)).Order(), answers.Where(f => f.Type == MessageTypes.RoomJoined).Select(f => f.Room!).Order());
        var refused = answers.Where(f => f.Type == MessageTypes.Error).ToList();
        Assert.All(refused, f => Assert.Equal(ErrorCodes.TooManyRooms, f.ErrorCode));
        Assert.Equal(more.Skip(4).Order(), refused.Select(f => f.Room!).Order());
        var registry = worker.Get<RoomRegistry>();
        Assert.Equal(10, registry.ActiveRooms);
        Assert.All(more.Skip(4), r => Assert.False(registry.TryGet(r, out _)));
    }
}
