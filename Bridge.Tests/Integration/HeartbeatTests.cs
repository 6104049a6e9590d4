using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;
using Bridge.Worker.Rooms;

namespace Bridge.Tests.Integration;

public sealed class HeartbeatTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task A_client_that_stops_answering_pings_is_reaped_and_its_rooms_freed_while_a_live_one_stays()
    {
        await using var worker = await WorkerHost.StartAsync(
            nats.Server,
            ("Bridge:Connections:HeartbeatInterval", "00:00:00.200"),
            ("Bridge:Connections:HeartbeatTimeout", "00:00:00.500"));
        var room = Names.Room();
        await using var alive = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await alive.JoinAndWaitAsync(room);

        // A client that never reads never answers a ping (pongs are sent while receiving): a dead peer.
        await using var dead = await TestClient.ConnectAsync(worker.WebSocketUrl, startReading: false);
        await dead.JoinAsync(room);
        var tracker = worker.Get<ConnectionTracker>();
        await Eventually.TrueAsync(() => worker.Get<RoomRegistry>().TryGet(room, out var r) && r.MemberCount == 2);

        await Eventually.TrueAsync(() => tracker.Count == 1, TimeSpan.FromSeconds(10), "the silent connection was not reaped");
        Assert.True(worker.Get<RoomRegistry>().TryGet(room, out var stillActive));
        Assert.Equal(1, stillActive.MemberCount);

        await alive.PublishAsync(room, "still here");
        await alive.WaitForAsync(f => f.Type == "chat.message");
    }
}
