using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;
using Bridge.Worker.Rooms;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>
/// Members slower than their room: a burst never costs a connection. A member whose queue is full reads the room
/// from the stream and is live again once it has caught up; only a connection that writes nothing for StallTimeout
/// is closed (4008).
/// </summary>
public sealed class SlowConsumerTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    // A burst of 3,000 messages of 4 KiB (12 MB) against a small send queue (Bursts.SmallSendQueue): far more than
    // the queue plus what the sockets buffer, so a member that reads slower than the burst falls behind.
    private const int Burst = 3000;

    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_burst_larger_than_the_queue_to_a_slow_reader_closes_nobody_and_it_ends_live_with_every_message_once_in_order(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Bursts.SmallSendQueue);
        using var meters = new WorkerMeters(worker);
        var room = Names.Room();
        await using var healthy = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await using var slow = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol, receiveBufferBytes: 4096);
        slow.ReadDelay = TimeSpan.FromMilliseconds(1);
        await healthy.JoinAndWaitAsync(room);
        await slow.JoinAndWaitAsync(room);

        var seqs = await Bursts.PublishAsync(nats.Server, room, Burst, bodyBytes: 4096);

        foreach (var client in new[] { healthy, slow })
        {
            var got = await client.CollectAsync(Burst, f => f.Type == Bursts.Type, Long);
            Assert.Equal(seqs, got.Select(f => f.Seq));
        }

        // It did fall behind (read from the stream), and it is back on the live dispatch: live, nobody behind.
        Assert.True(meters.Total("bridge.catchups") >= 1, "no member fell behind: the burst did not test anything");
        Assert.True(meters.Total("bridge.catchup.messages") >= 1);
        await Eventually.TrueAsync(() => MemberStates(worker, room).All(s => s == MemberState.Live) && worker.Get<RoomReader>().Behind == 0, Long);
        Assert.Equal(0, meters.Gauge("bridge.members.lagging"));
        var live = await Bursts.PublishAsync(nats.Server, room, 1, bodyBytes: 16);
        Assert.Equal(live[0], (await slow.WaitForAsync(f => f.Type == Bursts.Type)).Seq);
        Assert.False(slow.Closed.IsCompleted || healthy.Closed.IsCompleted);
        Assert.Equal(0, meters.Total("bridge.slow_consumer.closes"));
    }

    [Fact]
    public async Task A_member_that_pauses_longer_than_its_queue_then_reads_again_gets_every_message_once_in_order_and_ends_live()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Bursts.SmallSendQueue);
        using var meters = new WorkerMeters(worker);
        var room = Names.Room();
        await using var healthy = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var paused = await TestClient.ConnectAsync(worker.WebSocketUrl, receiveBufferBytes: 4096, startReading: false);
        await healthy.JoinAndWaitAsync(room);
        await paused.JoinAsync(room);
        await Eventually.TrueAsync(() => MemberStates(worker, room).Count(s => s == MemberState.Live) == 2);

        var publishing = Bursts.PublishAsync(nats.Server, room, Burst, bodyBytes: 4096);
        // It is behind while it does not read (its queue is full), and stays open.
        await Eventually.TrueAsync(() => worker.Get<RoomReader>().Behind >= 1, Long);
        var seqs = await publishing;
        var healthyGot = await healthy.CollectAsync(Burst, f => f.Type == Bursts.Type, Long);
        Assert.Equal(seqs, healthyGot.Select(f => f.Seq));
        Assert.True(worker.Get<RoomReader>().Behind >= 1);
        Assert.False(paused.Closed.IsCompleted);

        paused.StartReading();
        var got = await paused.CollectAsync(Burst, f => f.Type == Bursts.Type, Long);
        Assert.Equal(seqs, got.Select(f => f.Seq));
        await Eventually.TrueAsync(() => MemberStates(worker, room).All(s => s == MemberState.Live) && worker.Get<RoomReader>().Behind == 0, Long);
        var live = await Bursts.PublishAsync(nats.Server, room, 1, bodyBytes: 16);
        Assert.Equal(live[0], (await paused.WaitForAsync(f => f.Type == Bursts.Type)).Seq);
        Assert.Equal(0, meters.Total("bridge.slow_consumer.closes"));
    }

    [Fact]
    public async Task A_message_a_backend_mislabelled_as_json_in_a_burst_does_not_stop_a_member_catching_up()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Bursts.SmallSendQueue);
        var room = Names.Room();
        await using var paused = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack, receiveBufferBytes: 4096, startReading: false);
        await paused.JoinAsync(room);
        await Eventually.TrueAsync(() => MemberStates(worker, room).Count(s => s == MemberState.Live) == 1);

        // A body labelled JSON with a byte that is not UTF-8, in the middle of a burst the member reads from the stream
        // (issue 12: it goes out as binary; before, the MessagePack encoder threw on it at every read).
        var before = await Bursts.PublishAsync(nats.Server, room, Burst / 2, bodyBytes: 4096);
        await Eventually.TrueAsync(() => worker.Get<RoomReader>().Behind >= 1, Long);
        await using (var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url }))
        {
            var js = new NatsJSContext(backend);
            byte[] poison = [.. "{\"s\":\"A"u8, 0xFF, .. "B\"}"u8];
            (await js.PublishAsync($"rooms.{room}", poison,
                headers: new NatsHeaders { [NatsSubjects.TypeHeader] = "poison", [NatsSubjects.ContentTypeHeader] = NatsSubjects.JsonContentType })).EnsureSuccess();
        }

        var after = await Bursts.PublishAsync(nats.Server, room, Burst / 2, bodyBytes: 4096);
        paused.StartReading();
        var got = await paused.CollectAsync(Burst, f => f.Type == Bursts.Type, Long);
        Assert.Equal([.. before, .. after], got.Select(f => f.Seq));
        await Eventually.TrueAsync(() => MemberStates(worker, room).All(s => s == MemberState.Live) && worker.Get<RoomReader>().Behind == 0, Long);
    }

    [Fact]
    public async Task A_member_that_never_reads_is_closed_with_4008_after_the_stall_timeout_its_queue_bounded_and_the_others_get_everything()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, [.. Bursts.SmallSendQueue, ("Bridge:Connections:StallTimeout", "00:00:02"), ("Bridge:Connections:CloseTimeout", "00:00:30")]);
        using var meters = new WorkerMeters(worker);
        var room = Names.Room();
        await using var healthy = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var healthy2 = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await using var stalled = await TestClient.ConnectAsync(worker.WebSocketUrl, receiveBufferBytes: 4096, startReading: false);
        await healthy.JoinAndWaitAsync(room);
        await healthy2.JoinAndWaitAsync(room);
        await stalled.JoinAsync(room);
        await Eventually.TrueAsync(() => MemberStates(worker, room).Count(s => s == MemberState.Live) == 3);
        var tracker = worker.Get<ConnectionTracker>();

        // While the burst runs, no connection's queue holds more than its bounds: 64 frames of room messages and
        // 256 KiB (plus one frame), with a quarter more of each for answers.
        var peakFrames = 0;
        long peakBytes = 0;
        using var sampling = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!sampling.IsCancellationRequested)
            {
                foreach (var session in tracker.Sessions)
                {
                    peakFrames = Math.Max(peakFrames, session.Queue.Count);
                    peakBytes = Math.Max(peakBytes, session.Queue.QueuedBytes);
                }

                await Task.Delay(5);
            }
        });

        var seqs = await Bursts.PublishAsync(nats.Server, room, Burst, bodyBytes: 4096);
        foreach (var client in new[] { healthy, healthy2 })
        {
            var got = await client.CollectAsync(Burst, f => f.Type == Bursts.Type, Long);
            Assert.Equal(seqs, got.Select(f => f.Seq));
        }

        // Nothing written to it for StallTimeout: closed with 4008 (stalled). Its close frame waits behind what its
        // socket already holds, so it reads that to see it; then it is out of the room and the worker.
        await Eventually.TrueAsync(() => tracker.Sessions.Any(s => s.CloseRequested?.Code == CloseCodes.SlowConsumer), Long);
        await sampling.CancelAsync();
        await sampler;
        stalled.StartReading();
        Assert.Equal((WebSocketCloseStatus)CloseCodes.SlowConsumer, await stalled.Closed.WaitAsync(Long));
        await Eventually.TrueAsync(() => tracker.Count == 2, Long);
        Assert.StartsWith("stalled", stalled.CloseReason, StringComparison.Ordinal);
        Assert.InRange(peakFrames, 1, 64 + 16);
        Assert.InRange(peakBytes, 1, 262144 + 65536 + 8192);
        Assert.True(worker.Get<RoomRegistry>().TryGet(room, out var active));
        Assert.Equal(2, active.MemberCount);
        Assert.Equal(0, worker.Get<RoomReader>().Behind);
        // Counted just after the session leaves the tracker (ConnectionTracker.Remove): wait for it, then exactly once.
        await Eventually.TrueAsync(() => meters.Total("bridge.slow_consumer.closes") >= 1, Long);
        Assert.Equal(1, meters.Total("bridge.slow_consumer.closes"));
        Assert.False(healthy.Closed.IsCompleted || healthy2.Closed.IsCompleted);
    }

    [Fact]
    public async Task A_slow_sse_reader_gets_a_burst_larger_than_its_queue_once_in_order_and_ends_live()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Bursts.SmallSendQueue);
        using var meters = new WorkerMeters(worker);
        var room = Names.Room();
        await using var healthy = await SseClient.ConnectAsync(worker.HttpUrl, room);
        await using var slow = await SseClient.ConnectAsync(worker.HttpUrl, room, receiveBufferBytes: 4096);
        slow.ReadDelay = TimeSpan.FromMilliseconds(1);
        await healthy.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        await slow.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);

        var seqs = await Bursts.PublishAsync(nats.Server, room, Burst, bodyBytes: 4096);
        foreach (var client in new[] { healthy, slow })
        {
            var got = await client.CollectAsync(Burst, e => e.Event == Bursts.Type, Long);
            Assert.Equal(seqs, got.Select(e => e.Json["seq"]!.GetValue<ulong>()));
        }

        Assert.True(meters.Total("bridge.catchups") >= 1, "no member fell behind: the burst did not test anything");
        await Eventually.TrueAsync(() => MemberStates(worker, room).All(s => s == MemberState.Live) && worker.Get<RoomReader>().Behind == 0, Long);
        var live = await Bursts.PublishAsync(nats.Server, room, 1, bodyBytes: 16);
        Assert.Equal(live[0].ToString(), (await slow.WaitForAsync(e => e.Event == Bursts.Type)).Id);
        Assert.Equal(2, worker.Get<ConnectionTracker>().Count);
    }

    [Fact]
    public async Task Long_polls_page_a_backlog_larger_than_their_queue_every_message_once_in_order_then_live()
    {
        const int pageSize = 200;
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:PollMaxMessages", pageSize.ToString()), ("Bridge:Connections:PollTimeout", "00:00:05"));
        using var meters = new WorkerMeters(worker);
        using var http = new HttpClient { Timeout = Long };
        var room = Names.Room();
        // The first poll joins live: it answers with the first messages published after its join.
        var (cursor, firstPage, pings) = await Bursts.PollWhilePublishingAsync(http, worker, nats.Server, room, null);
        Assert.NotEmpty(firstPage);

        // The burst comes while no poll is in flight: the next polls read it from the stream, a page at a time.
        var expected = pings.Where(s => s > ulong.Parse(cursor)).Concat(await Bursts.PublishAsync(nats.Server, room, Burst, bodyBytes: 256)).ToList();
        var seen = new List<ulong>();
        for (var poll = 0; poll < 100 && seen.Count < expected.Count; poll++)
        {
            var (next, page) = await Bursts.PollAsync(http, worker, room, cursor);
            Assert.InRange(page.Count, 1, pageSize);
            seen.AddRange(page);
            cursor = next;
        }

        Assert.True(expected.SequenceEqual(seen), $"expected {expected.Count} from {expected[0]} to {expected[^1]}, saw {seen.Count} from {seen.FirstOrDefault()} to {seen.LastOrDefault()}, first missing {expected.Except(seen).FirstOrDefault()}, first extra {seen.Except(expected).FirstOrDefault()}");
        Assert.True(meters.Total("bridge.replayed.messages") >= Burst);

        // Caught up: the next poll waits live and answers with what comes next, nothing older.
        var (_, after, _) = await Bursts.PollWhilePublishingAsync(http, worker, nats.Server, room, cursor);
        Assert.NotEmpty(after);
        Assert.True(after[0] > expected[^1]);
        Assert.Equal(0, worker.Get<RoomReader>().Behind);
    }

    private static List<MemberState> MemberStates(WorkerHost worker, string room) =>
        [.. worker.Get<ConnectionTracker>().Sessions.Select(s => s.Rooms.Find(room)).OfType<RoomMembership>().Select(m => m.State)];
}
