using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Tests.Integration;

/// <summary>
/// A catch-up read that finds its start dropped by retention, queues what is kept after it, then fails (here: the
/// stream refuses the read's consumer, its one consumer slot taken) still tells the member <c>truncated</c>: what a
/// read found out about retention outlives the read. Its own nats-server: the stream allows one consumer.
/// </summary>
public sealed class CatchUpReadFailureTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task A_catch_up_read_that_fails_after_a_retention_gap_still_sends_truncated_after_the_gap()
    {
        // A queue of 512 frames: each catch-up read wants more than the cursor's first batch direct get (128), so it
        // goes on through a consumer, which the stream refuses while the test holds its only consumer slot.
        await using var worker = await WorkerHost.StartAsync(nats.Server, [
            ("Bridge:Nats:MaxMessagesPerRoom", "300"),
            ("Bridge:Nats:MaxConsumers", "1"),
            ("Bridge:Connections:SendQueueCapacity", "512"),
        ]);
        await using var connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(connection);
        await js.CreateOrUpdateConsumerAsync("ROOMS", new ConsumerConfig { Name = "slot-taken", FilterSubject = "rooms.slot-taken" });
        await Assert.ThrowsAsync<NatsJSApiException>(async () =>
            await js.CreateOrUpdateConsumerAsync("ROOMS", new ConsumerConfig { Name = "second", FilterSubject = "rooms.second" }));

        var room = Names.Room();
        await using var paused = await TestClient.ConnectAsync(worker.WebSocketUrl, receiveBufferBytes: 4096, startReading: false);
        // 3,000 messages of 4 KiB: the stream keeps the last 300, so where the paused member stopped is gone when it
        // reads again; its first read finds that, queues the first 128 kept, then cannot create its consumer.
        var (seqs, frames) = await Truncations.PauseThroughBurstAsync(worker, nats.Server, paused, room, 3000, Long);

        Truncations.AssertKeptInOrderAndEveryGapNoticed(frames, seqs, kept: 300);

        // With the slot free again, it ends live.
        await js.DeleteConsumerAsync("ROOMS", "slot-taken");
        await Eventually.TrueAsync(() => worker.Get<RoomReader>().Behind == 0, Long);
        var live = await Bursts.PublishAsync(nats.Server, room, 1, bodyBytes: 16);
        Assert.Equal(live[0], (await paused.WaitForAsync(f => f.Type == Bursts.Type)).Seq);
        Assert.False(paused.Closed.IsCompleted);
    }
}
