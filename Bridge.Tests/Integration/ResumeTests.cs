using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

public sealed class ResumeTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static Dictionary<string, object?> Join(string room, ulong? since) => new()
    {
        ["type"] = MessageTypes.RoomJoin,
        ["room"] = room,
        ["payload"] = since is null ? null : new Dictionary<string, object?> { ["since"] = since },
    };

    private async Task PublishBackendAsync(string room, int count, string type = "chat.message", int offset = 0)
    {
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        // One at a time, so the stream order is the payload order.
        for (var i = 0; i < count; i++)
        {
            var ack = await js.PublishAsync($"rooms.{room}", System.Text.Encoding.UTF8.GetBytes((offset + i).ToString()),
                headers: new NatsHeaders { [NatsSubjects.TypeHeader] = type });
            ack.EnsureSuccess();
        }
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_client_that_reconnects_to_another_worker_gets_exactly_what_it_missed_then_live(string protocol)
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room();

        ulong lastSeen;
        await using (var first = await TestClient.ConnectAsync(workerA.WebSocketUrl, protocol))
        {
            await first.JoinAndWaitAsync(room);
            await PublishBackendAsync(room, 5);
            var seen = await first.CollectAsync(5, f => f.Type == "chat.message");
            lastSeen = seen[^1].Seq;
        }

        // While it is away, 1,000 messages are stored.
        await PublishBackendAsync(room, 1000, offset: 5);

        await using var again = await TestClient.ConnectAsync(workerB.WebSocketUrl, protocol);
        await again.SendAsync(Join(room, lastSeen));
        var replayed = await again.CollectAsync(1000, f => f.Type == "chat.message", TimeSpan.FromSeconds(30));
        var joined = await again.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);

        Assert.Equal(Enumerable.Range(5, 1000).Select(i => i.ToString()), replayed.Select(PayloadText));
        Assert.True(replayed.Zip(replayed.Skip(1)).All(p => p.First.Seq < p.Second.Seq));
        Assert.True(replayed[0].Seq > lastSeen);
        Assert.Equal(1000, joined.Payload!["replayed"]!.GetValue<int>());
        Assert.False(joined.Payload!["truncated"]!.GetValue<bool>());
        Assert.Equal(replayed[^1].Seq, joined.Seq);

        // Then live, without repeating anything.
        await PublishBackendAsync(room, 3, offset: 1005);
        var live = await again.CollectAsync(3, f => f.Type == "chat.message");
        Assert.Equal(["1005", "1006", "1007"], live.Select(PayloadText));
        Assert.True(live[0].Seq > joined.Seq);
        Assert.True(await again.NothingArrivesAsync(f => f.Type == "chat.message", TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Messages_published_continuously_while_clients_resume_arrive_once_each_with_no_gap_at_the_seam()
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room();
        await using var watcher = await TestClient.ConnectAsync(workerA.WebSocketUrl);
        await watcher.JoinAndWaitAsync(room);

        const int total = 600;
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < total; i += 20)
            {
                await PublishBackendAsync(room, 20, offset: i);
                await Task.Delay(5);
            }
        });

        // Several clients resume from various points while the publisher runs.
        var resumed = new List<(TestClient Client, ulong Since)>();
        var watched = new List<Frame>();
        for (var k = 0; k < 5; k++)
        {
            watched.AddRange(await watcher.CollectAsync(40, f => f.Type == "chat.message", TimeSpan.FromSeconds(30)));
            var since = watched[Random.Shared.Next(watched.Count)].Seq;
            var client = await TestClient.ConnectAsync(workerB.WebSocketUrl, k % 2 == 0 ? Subprotocols.Json : Subprotocols.MessagePack);
            await client.SendAsync(Join(room, since));
            resumed.Add((client, since));
        }

        await publishing;
        watched.AddRange(await watcher.CollectAsync(total - watched.Count, f => f.Type == "chat.message", TimeSpan.FromSeconds(30)));
        var all = watched.Select(f => f.Seq).ToList();
        Assert.Equal(total, all.Distinct().Count());

        foreach (var (client, since) in resumed)
        {
            var expected = all.Where(s => s > since).ToList();
            var got = await client.CollectAsync(expected.Count, f => f.Type == "chat.message", TimeSpan.FromSeconds(30));
            Assert.Equal(expected, got.Select(f => f.Seq));
            Assert.True(await client.NothingArrivesAsync(f => f.Type == "chat.message", TimeSpan.FromMilliseconds(200)));
            await client.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_dashboard_resumes_many_rooms_from_their_own_positions_in_one_message()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var rooms = Enumerable.Range(0, 50).Select(_ => Names.Room("dash")).ToList();
        foreach (var (room, i) in rooms.Select((r, i) => (r, i)))
        {
            await PublishBackendAsync(room, 3 + (i % 4));
        }

        // Positions: the seq of each room's first message, so each room replays all but its first.
        await using var probe = await TestClient.ConnectAsync(worker.WebSocketUrl);
        var firsts = new Dictionary<string, ulong>();
        foreach (var room in rooms)
        {
            await probe.SendAsync(Join(room, 0));
            var first = await probe.WaitForAsync(f => f.Type == "chat.message" && f.Room == room);
            firsts[room] = first.Seq;
        }

        await using var dashboard = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await dashboard.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["payload"] = new Dictionary<string, object?>
            {
                ["rooms"] = rooms.Select(r => new Dictionary<string, object?> { ["room"] = r, ["since"] = firsts[r] }).ToList(),
            },
        });
        var joined = await dashboard.CollectAsync(rooms.Count, f => f.Type == MessageTypes.RoomJoined, TimeSpan.FromSeconds(30));
        Assert.Equal(rooms.Order(), joined.Select(j => j.Room!).Order());
        foreach (var (room, i) in rooms.Select((r, i) => (r, i)))
        {
            var j = joined.Single(f => f.Room == room);
            Assert.Equal(2 + (i % 4), j.Payload!["replayed"]!.GetValue<int>());
        }
    }

    [Fact]
    public async Task A_batch_join_beyond_the_request_slots_answers_each_entry_once_and_each_room_goes_live_with_no_gap_or_duplicate()
    {
        // Two request slots: the batch's 30 entries run two at a time, taking the next as one ends.
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxConcurrentRequests", "2"));
        var resumed = Enumerable.Range(0, 15).Select(_ => Names.Room("batch")).ToList();
        var live = Enumerable.Range(0, 15).Select(_ => Names.Room("batch")).ToList();
        foreach (var room in resumed)
        {
            await PublishBackendAsync(room, 3);
        }

        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.JoinAndWaitAsync(live[0]); // already in: the batch answers it again
        var entries = resumed.Select(r => new Dictionary<string, object?> { ["room"] = r, ["since"] = 0 })
            .Concat(live.Select(r => new Dictionary<string, object?> { ["room"] = r }))
            .Append(new Dictionary<string, object?> { ["room"] = "not a room" })
            .ToList();
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["id"] = "b-1", ["payload"] = new Dictionary<string, object?> { ["rooms"] = entries } });
        var frames = await client.CollectAsync(
            resumed.Count * 4 + live.Count + 1, f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error or "chat.message", TimeSpan.FromSeconds(30));
        var answers = frames.Where(f => f.Type != "chat.message").ToList();
        var error = Assert.Single(answers, f => f.Type == MessageTypes.Error);
        Assert.Equal((ErrorCodes.InvalidRoom, "b-1"), (error.ErrorCode, error.Payload!["ref"]!.GetValue<string>()));
        Assert.Equal(resumed.Concat(live).Order(), answers.Where(f => f.Type == MessageTypes.RoomJoined).Select(f => f.Room!).Order());
        Assert.All(answers.Where(f => resumed.Contains(f.Room!)), j => Assert.Equal(3, j.Payload!["replayed"]!.GetValue<int>()));

        // The connection read on while the batch ran; every room is live: each message after the seam comes once.
        foreach (var room in resumed.Concat(live))
        {
            await PublishBackendAsync(room, 1, offset: 3);
        }

        var messages = frames.Where(f => f.Type == "chat.message")
            .Concat(await client.CollectAsync(resumed.Count + live.Count, f => f.Type == "chat.message", TimeSpan.FromSeconds(30)))
            .ToList();
        foreach (var room in resumed)
        {
            Assert.Equal(["0", "1", "2", "3"], messages.Where(f => f.Room == room).Select(f => f.Payload!.ToJsonString()));
        }

        Assert.All(live, room => Assert.Equal(["3"], messages.Where(f => f.Room == room).Select(f => f.Payload!.ToJsonString())));
        Assert.True(await client.NothingArrivesAsync(f => f.Type is "chat.message" or MessageTypes.RoomJoined, TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Room_sync_returns_the_latest_messages_and_the_position_to_resume_from()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        var room = Names.Room("sensor");
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = room });
        var empty = await client.WaitForAsync(f => f.Type == MessageTypes.RoomState);
        Assert.Equal(0UL, empty.Seq);
        Assert.Empty(empty.Payload!["messages"]!.AsArray());

        await PublishBackendAsync(room, 10, type: "sensor.reading");
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = room });
        var current = await client.WaitForAsync(f => f.Type == MessageTypes.RoomState);
        var only = Assert.Single(current.Payload!["messages"]!.AsArray());
        Assert.Equal(9, only!["payload"]!.GetValue<int>());
        Assert.Equal("sensor.reading", only["type"]!.GetValue<string>());
        Assert.Equal(current.Seq, only["seq"]!.GetValue<ulong>());

        await client.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = room, ["payload"] = new Dictionary<string, object?> { ["limit"] = 4 } });
        var latest = await client.WaitForAsync(f => f.Type == MessageTypes.RoomState);
        Assert.Equal([6, 7, 8, 9], latest.Payload!["messages"]!.AsArray().Select(m => m!["payload"]!.GetValue<int>()));

        // Resuming from the sync position delivers only what comes next.
        await client.SendAsync(Join(room, current.Seq));
        var joined = await client.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);
        Assert.Equal(0, joined.Payload!["replayed"]!.GetValue<int>());
        await PublishBackendAsync(room, 1, type: "sensor.reading", offset: 10);
        Assert.Equal(10, (await client.WaitForAsync(f => f.Type == "sensor.reading")).Payload!.GetValue<int>());

        await client.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = room, ["payload"] = new Dictionary<string, object?> { ["limit"] = 0 } });
        Assert.Equal(ErrorCodes.InvalidArgument, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);
    }

    private static string PayloadText(Frame f) => f.Payload!.ToJsonString();
}
