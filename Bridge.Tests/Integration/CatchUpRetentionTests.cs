using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;

namespace Bridge.Tests.Integration;

/// <summary>
/// A member so far behind that retention drops messages before it reads them is told, as a resume would be
/// (<c>room.joined</c> with <c>truncated</c>), then goes on from what is kept. Its own nats-server: the stream here
/// keeps only 100 messages per room.
/// </summary>
public sealed class CatchUpRetentionTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task A_member_behind_beyond_retention_gets_room_joined_truncated_then_what_is_kept_and_ends_live()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, [("Bridge:Nats:MaxMessagesPerRoom", "100"), .. Bursts.SmallSendQueue]);
        using var meters = new WorkerMeters(worker);
        var room = Names.Room();
        await using var paused = await TestClient.ConnectAsync(worker.WebSocketUrl, receiveBufferBytes: 4096, startReading: false);

        // 3,000 messages of 4 KiB (12 MB): the paused member's queue and sockets hold a small part; the stream keeps
        // the last 100, so where it stopped is long gone when it reads again.
        var (seqs, frames) = await Truncations.PauseThroughBurstAsync(worker, nats.Server, paused, room, 3000, Long);

        Truncations.AssertKeptInOrderAndEveryGapNoticed(frames, seqs, kept: 100);
        var notices = frames.Where(f => f.Type == MessageTypes.RoomJoined).ToList();
        Assert.False(notices[0].Truncated); // the join's
        Assert.All(notices.Skip(1), n => Assert.True(n.Truncated));
        Assert.True(meters.Total("bridge.catchup.truncated") >= 1);

        await Eventually.TrueAsync(() => worker.Get<RoomReader>().Behind == 0, Long);
        var live = await Bursts.PublishAsync(nats.Server, room, 1, bodyBytes: 16);
        Assert.Equal(live[0], (await paused.WaitForAsync(f => f.Type == Bursts.Type)).Seq);
        Assert.False(paused.Closed.IsCompleted);
    }

    [Fact]
    public async Task A_slow_sse_reader_behind_beyond_retention_gets_room_joined_truncated_after_the_gap_then_what_is_kept()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, [("Bridge:Nats:MaxMessagesPerRoom", "100"), .. Bursts.SmallSendQueue]);
        var room = Names.Room();
        await using var slow = await SseClient.ConnectAsync(worker.HttpUrl, room, receiveBufferBytes: 4096);
        await slow.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);

        // Five events a second while 3,000 messages of 4 KiB are published: where it is goes out of retention.
        slow.ReadDelay = TimeSpan.FromMilliseconds(200);
        var publishing = Bursts.PublishAsync(nats.Server, room, 3000, bodyBytes: 4096);
        await Eventually.TrueAsync(() => worker.Get<RoomReader>().Behind >= 1, Long);
        var seqs = await publishing;

        slow.ReadDelay = TimeSpan.Zero;
        var seen = await Truncations.ReadUpToAsync(slow, seqs[^1], Long);

        Truncations.AssertKeptInOrderAndEveryGapNoticed(seen, seqs, kept: 100);
        await Eventually.TrueAsync(() => worker.Get<RoomReader>().Behind == 0, Long);
    }
}
