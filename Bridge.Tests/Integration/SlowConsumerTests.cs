using Bridge.Testing;
using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

public sealed class SlowConsumerTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task Stalled_client_is_closed_with_4008_and_the_others_keep_receiving_everything()
    {
        await using var worker = await WorkerHost.StartAsync(
            nats.Server,
            // Room enough for healthy readers on a busy CI machine; far less than what is published (16 MB), which
            // also exceeds the socket buffers a stalled reader can hide behind.
            ("Bridge:Connections:SendQueueCapacity", "256"),
            ("Bridge:Connections:SendQueueMaxBytes", "2097152"),
            ("Bridge:Connections:CloseTimeout", "00:00:30"));
        await using var healthy = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var healthy2 = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        var room = Names.Room();
        await healthy.JoinAndWaitAsync(room);
        await healthy2.JoinAndWaitAsync(room);

        // The stalled client joins, then stops reading; its tiny TCP buffer fills at once.
        await using var stalled = await TestClient.ConnectAsync(worker.WebSocketUrl, receiveBufferBytes: 4096, startReading: false);
        await stalled.JoinAsync(room);
        var tracker = worker.Get<ConnectionTracker>();
        await Eventually.TrueAsync(() => worker.Get<Bridge.Worker.Rooms.RoomRegistry>().TryGet(room, out var r) && r.MemberCount == 3);

        const int count = 1000;
        var body = new byte[16 * 1024];
        Random.Shared.NextBytes(body);
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        for (var i = 0; i < count; i++)
        {
            (await js.PublishAsync($"rooms.{room}", body, headers: new NatsHeaders { [NatsSubjects.TypeHeader] = "bulk.data" })).EnsureSuccess();
        }

        // Every healthy client gets every message, in order, while the stalled one is cut off.
        foreach (var client in new[] { healthy, healthy2 })
        {
            var received = await client.CollectAsync(count, f => f.Type == "bulk.data", TimeSpan.FromSeconds(60));
            Assert.Equal(received.Select(f => f.Seq).Order(), received.Select(f => f.Seq));
            Assert.Equal(count, received.Select(f => f.Seq).Distinct().Count());
        }

        // The stalled client, once it reads again, finds its backlog cut short and a 4008 close.
        stalled.StartReading();
        Assert.Equal((WebSocketCloseStatus)CloseCodes.SlowConsumer, await stalled.Closed.WaitAsync(TimeSpan.FromSeconds(30)));
        var got = 0;
        try
        {
            while (true)
            {
                if ((await stalled.NextAsync(TimeSpan.FromSeconds(1))).Type == "bulk.data")
                {
                    got++;
                }
            }
        }
        catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
        {
        }

        Assert.InRange(got, 0, count - 1);

        // Its resources are freed: out of the room and out of the worker.
        await Eventually.TrueAsync(() => tracker.Count == 2);
        Assert.True(worker.Get<Bridge.Worker.Rooms.RoomRegistry>().TryGet(room, out var stillActive));
        Assert.Equal(2, stillActive.MemberCount);
    }
}
