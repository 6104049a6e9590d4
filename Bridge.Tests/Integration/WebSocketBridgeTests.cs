using Bridge.Testing;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

public sealed class WebSocketBridgeTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    [InlineData(null)]
    public async Task Client_joins_publishes_gets_ack_and_receives_its_message(string? subprotocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, subprotocol);

        var welcome = await client.NextAsync();
        Assert.Equal(MessageTypes.Welcome, welcome.Type);
        Assert.Equal(worker.Id, welcome.Payload!["serverId"]!.GetValue<string>());
        Assert.Equal(Subprotocols.Version, welcome.Payload!["protocol"]!.GetValue<int>());
        Assert.False(string.IsNullOrEmpty(welcome.Payload!["connectionId"]!.GetValue<string>()));
        Assert.True(welcome.Payload!["heartbeatMs"]!.GetValue<long>() > 0);

        var room = Names.Room();
        await client.JoinAndWaitAsync(room);
        // Ids are de-duplicated per sender across the stream, so each test run uses fresh ones.
        var id = "m-" + Guid.NewGuid().ToString("N");
        await client.PublishAsync(room, new Dictionary<string, object?> { ["text"] = "hello", ["n"] = 42 }, id: id);

        // The ack and the room's copy of the message travel different paths; either may come first.
        var frames = await client.CollectAsync(2, f => f.Type is MessageTypes.Ack or "chat.message");
        var ack = Assert.Single(frames, f => f.Type == MessageTypes.Ack);
        Assert.Equal(id, ack.Id);
        Assert.Equal(room, ack.Room);
        Assert.True(ack.Seq > 0);

        var message = Assert.Single(frames, f => f.Type == "chat.message");
        Assert.Equal(room, message.Room);
        Assert.Equal(ack.Seq, message.Seq);
        Assert.Equal(id, message.Id);
        Assert.Equal("hello", message.Payload!["text"]!.GetValue<string>());
        Assert.Equal(42, message.Payload!["n"]!.GetValue<int>());
        Assert.Equal("anonymous", message.Json["from"]!.GetValue<string>());
        var ts = DateTimeOffset.FromUnixTimeMilliseconds(message.Json["ts"]!.GetValue<long>());
        Assert.InRange(ts, DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddMinutes(1));
    }

    [Fact]
    public async Task Json_and_msgpack_clients_in_one_room_see_the_same_messages_including_binary_payloads()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await using var msgpack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        var room = Names.Room();
        await json.JoinAndWaitAsync(room);
        await msgpack.JoinAndWaitAsync(room);

        byte[] blob = [0, 1, 2, 250, 255];
        await json.PublishAsync(room, new Dictionary<string, object?> { ["from"] = "json", ["list"] = new[] { 1, 2, 3 } }, type: "cursor.move");
        await msgpack.PublishAsync(room, blob, type: "sensor.raw");
        await json.SendAsync(new() { ["type"] = "sensor.raw", ["room"] = room, ["enc"] = "base64", ["payload"] = Convert.ToBase64String(blob) });

        // The two clients publish on their own connections: which of their first messages the stream stores first is a
        // race. Both clients see the same three, in the stream's order.
        var orders = new List<List<ulong>>();
        foreach (var client in new[] { json, msgpack })
        {
            var received = await client.CollectAsync(3, f => f.Room == room && f.Type is "cursor.move" or "sensor.raw");
            orders.Add([.. received.Select(f => f.Seq)]);
            Assert.Equal(["cursor.move", "sensor.raw", "sensor.raw"], received.Select(f => f.Type).Order(StringComparer.Ordinal));
            var cursor = Assert.Single(received, f => f.Type == "cursor.move");
            Assert.Equal("json", cursor.Payload!["from"]!.GetValue<string>());
            Assert.Equal([1, 2, 3], cursor.Payload!["list"]!.AsArray().Select(n => n!.GetValue<int>()));
            Assert.True(received[0].Seq < received[1].Seq && received[1].Seq < received[2].Seq);
            foreach (var binary in received.Where(f => f.Type == "sensor.raw"))
            {
                if (client.IsMsgPack)
                {
                    // MessagePack bin, not a string.
                    Assert.Equal(blob, Assert.IsType<byte[]>(binary.MsgPack!["payload"]));
                }
                else
                {
                    Assert.Equal("base64", binary.Json["enc"]!.GetValue<string>());
                    Assert.Equal(blob, Convert.FromBase64String(binary.Payload!.GetValue<string>()));
                }
            }
        }

        Assert.Equal(orders[0], orders[1]);
    }

    [Fact]
    public async Task A_message_published_on_one_worker_reaches_a_client_of_another_worker()
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        await using var onA = await TestClient.ConnectAsync(workerA.WebSocketUrl);
        await using var onB = await TestClient.ConnectAsync(workerB.WebSocketUrl, Subprotocols.MessagePack);
        var room = Names.Room();
        await onB.JoinAndWaitAsync(room);

        await onA.PublishAsync(room, new Dictionary<string, object?> { ["x"] = 1 }, id: "cross-1");
        var ack = await onA.WaitForAsync(f => f.Type == MessageTypes.Ack);

        var received = await onB.WaitForAsync(f => f.Type == "chat.message");
        Assert.Equal(ack.Seq, received.Seq);
        Assert.Equal("cross-1", received.Id);
        Assert.Equal(1, received.Payload!["x"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_worker_subscribes_only_to_rooms_its_clients_are_in_and_unsubscribes_on_last_leave()
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        await using var onA = await TestClient.ConnectAsync(workerA.WebSocketUrl);
        await using var onA2 = await TestClient.ConnectAsync(workerA.WebSocketUrl);
        await using var onB = await TestClient.ConnectAsync(workerB.WebSocketUrl);
        var roomA = Names.Room();
        var roomB = Names.Room();
        await onA.JoinAndWaitAsync(roomA);
        await onA2.JoinAndWaitAsync(roomA);
        await onB.JoinAndWaitAsync(roomB);

        // The server's own view: one subscription per active room, shared by the worker's connections.
        var subsA = await nats.Server.SubscriptionsOfAsync(workerA.Id);
        var subsB = await nats.Server.SubscriptionsOfAsync(workerB.Id);
        Assert.Single(subsA, s => s == $"live.rooms.{roomA}");
        Assert.DoesNotContain(subsA, s => s.Contains(roomB, StringComparison.Ordinal));
        Assert.Contains($"live.rooms.{roomB}", subsB);
        Assert.DoesNotContain(subsB, s => s.Contains(roomA, StringComparison.Ordinal) || s.EndsWith('>'));

        // Traffic to room A is never sent to worker B.
        var outBefore = await nats.Server.OutMsgsOfAsync(workerB.Id);
        for (var i = 0; i < 20; i++)
        {
            await onA.PublishAsync(roomA, i);
        }

        await onA2.CollectAsync(20, f => f.Type == "chat.message");
        var outAfter = await nats.Server.OutMsgsOfAsync(workerB.Id);
        Assert.Equal(outBefore, outAfter);

        // Last leave on A closes A's subscription for the room.
        await onA.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = roomA });
        await onA.WaitForAsync(f => f.Type == MessageTypes.RoomLeft);
        Assert.Contains($"live.rooms.{roomA}", await nats.Server.SubscriptionsOfAsync(workerA.Id));
        await onA2.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = roomA });
        await onA2.WaitForAsync(f => f.Type == MessageTypes.RoomLeft);
        await Eventually.TrueAsync(async () => !(await nats.Server.SubscriptionsOfAsync(workerA.Id)).Contains($"live.rooms.{roomA}"));
        Assert.Equal(0, workerA.Get<Bridge.Worker.Rooms.RoomRegistry>().ActiveRooms);
    }

    [Fact]
    public async Task A_client_that_left_a_room_receives_nothing_more_from_it()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var leaver = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var stayer = await TestClient.ConnectAsync(worker.WebSocketUrl);
        var room = Names.Room();
        await leaver.JoinAndWaitAsync(room);
        await stayer.JoinAndWaitAsync(room);
        await leaver.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = room });
        await leaver.WaitForAsync(f => f.Type == MessageTypes.RoomLeft && f.Room == room);

        await stayer.PublishAsync(room, "after-leave");
        await stayer.WaitForAsync(f => f.Type == "chat.message");
        Assert.True(await leaver.NothingArrivesAsync(f => f.Type == "chat.message", TimeSpan.FromMilliseconds(500)));
    }

    [Fact]
    public async Task A_backend_publishing_with_any_NATS_client_reaches_websocket_clients()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var msgpack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        var room = Names.Room("devices");
        await json.JoinAndWaitAsync(room);
        await msgpack.JoinAndWaitAsync(room);

        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NATS.Client.JetStream.NatsJSContext(backend);
        var headers = new NatsHeaders
        {
            [NatsSubjects.TypeHeader] = "sensor.reading",
            [NatsSubjects.FromHeader] = "backend:thermo",
            [NatsSubjects.IdHeader] = "r-1",
            [NatsSubjects.ContentTypeHeader] = NatsSubjects.JsonContentType,
        };
        var ack = await js.PublishAsync($"rooms.{room}", Encoding.UTF8.GetBytes("""{"celsius":21.5}"""), headers: headers);
        ack.EnsureSuccess();
        // No headers at all: type "message"; a body that is not JSON travels as binary.
        (await js.PublishAsync($"rooms.{room}", "plain text, not JSON"u8.ToArray())).EnsureSuccess();

        foreach (var client in new[] { json, msgpack })
        {
            var reading = await client.WaitForAsync(f => f.Type == "sensor.reading");
            Assert.Equal(ack.Seq, reading.Seq);
            Assert.Equal("backend:thermo", reading.Json["from"]!.GetValue<string>());
            Assert.Equal("r-1", reading.Id);
            Assert.Equal(21.5, reading.Payload!["celsius"]!.GetValue<double>());

            var plain = await client.WaitForAsync(f => f.Type == NatsSubjects.DefaultType);
            var bytes = client.IsMsgPack
                ? Assert.IsType<byte[]>(plain.MsgPack!["payload"])
                : Convert.FromBase64String(plain.Payload!.GetValue<string>());
            Assert.Equal("plain text, not JSON", Encoding.UTF8.GetString(bytes));
        }
    }

    [Fact]
    public async Task A_retried_publish_with_the_same_id_is_stored_once()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        var room = Names.Room();
        await client.JoinAndWaitAsync(room);

        await client.PublishAsync(room, "once", id: "dup-1");
        await client.PublishAsync(room, "once", id: "dup-1");
        await client.PublishAsync(room, "marker", id: "dup-2");

        // Three acks and, after the marker, nothing but two stored messages.
        var frames = await client.CollectAsync(5, f => f.Type is MessageTypes.Ack or "chat.message");
        var acks = frames.Where(f => f.Type == MessageTypes.Ack).ToList();
        Assert.Equal(3, acks.Count);
        Assert.False(acks[0].Payload!["duplicate"]!.GetValue<bool>());
        Assert.True(acks[1].Payload!["duplicate"]!.GetValue<bool>());
        Assert.Equal(acks[0].Seq, acks[1].Seq);
        var messages = frames.Where(f => f.Type == "chat.message").ToList();
        Assert.Equal(["dup-1", "dup-2"], messages.Select(m => m.Id));
        Assert.True(await client.NothingArrivesAsync(f => f.Type == "chat.message", TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Room_joined_always_precedes_the_rooms_messages_even_while_it_is_busy()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var publisher = await TestClient.ConnectAsync(worker.WebSocketUrl);
        var room = Names.Room();
        await publisher.JoinAndWaitAsync(room);
        using var stop = new CancellationTokenSource();
        var flood = Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested && i < 5000; i++)
            {
                await publisher.PublishAsync(room, i);
            }
        });

        for (var attempt = 0; attempt < 10; attempt++)
        {
            await using var joiner = await TestClient.ConnectAsync(worker.WebSocketUrl, attempt % 2 == 0 ? Subprotocols.Json : Subprotocols.MessagePack);
            await joiner.JoinAsync(room);
            var first = await joiner.WaitForAsync(f => f.Room == room);
            Assert.Equal(MessageTypes.RoomJoined, first.Type);
            var next = await joiner.WaitForAsync(f => f.Room == room);
            Assert.Equal("chat.message", next.Type);
        }

        stop.Cancel();
        await flood;
    }

    [Fact]
    public async Task A_worker_that_shuts_down_closes_websockets_with_1012_and_a_resume_elsewhere_loses_nothing()
    {
        var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room();
        var client = await TestClient.ConnectAsync(workerA.WebSocketUrl);
        await client.JoinAndWaitAsync(room);
        await client.PublishAsync(room, "before");
        var seen = await client.WaitForAsync(f => f.Type == "chat.message");

        await workerA.DisposeAsync();
        Assert.Equal((System.Net.WebSockets.WebSocketCloseStatus)CloseCodes.ServiceRestart, await client.Closed.WaitAsync(TimeSpan.FromSeconds(10)));
        await client.DisposeAsync();

        await using var publisher = await TestClient.ConnectAsync(workerB.WebSocketUrl);
        await publisher.PublishAsync(room, "while away");
        await publisher.WaitForAsync(f => f.Type == MessageTypes.Ack);

        await using var resumed = await TestClient.ConnectAsync(workerB.WebSocketUrl);
        await resumed.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["room"] = room,
            ["payload"] = new Dictionary<string, object?> { ["since"] = seen.Seq },
        });
        var missed = await resumed.WaitForAsync(f => f.Type == "chat.message");
        Assert.Equal("while away", missed.Payload!.GetValue<string>());
    }
}
