using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>Retention and NATS failures. Each test has its own nats-server, since one of them kills it.</summary>
public sealed class DurabilityTests : IAsyncLifetime
{
    private NatsServerProcess _nats = null!;

    public async Task InitializeAsync() => _nats = await NatsServerProcess.StartAsync();

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    [Fact]
    public async Task Resuming_from_beyond_retention_says_truncated_replays_what_is_kept_and_sync_gives_the_current_state()
    {
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:Nats:MaxMessagesPerRoom", "10"));
        var room = Names.Room();
        await using var backend = new NatsConnection(new NatsOpts { Url = _nats.Url });
        var js = new NatsJSContext(backend);
        var seqs = new List<ulong>();
        for (var i = 0; i < 30; i++)
        {
            var ack = await js.PublishAsync($"rooms.{room}", System.Text.Encoding.UTF8.GetBytes(i.ToString()));
            ack.EnsureSuccess();
            seqs.Add(ack.Seq);
        }

        // The client last saw message #5, which retention (10 per room) has since dropped.
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["room"] = room,
            ["payload"] = new Dictionary<string, object?> { ["since"] = seqs[5] },
        });
        var replayed = await client.CollectAsync(10, f => f.Type == NatsSubjects.DefaultType);
        var joined = await client.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);
        Assert.True(joined.Payload!["truncated"]!.GetValue<bool>());
        Assert.Equal(10, joined.Payload!["replayed"]!.GetValue<int>());
        Assert.Equal(seqs.Skip(20), replayed.Select(f => f.Seq));

        // Not truncated when the position is still kept.
        await using var recent = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await recent.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["room"] = room,
            ["payload"] = new Dictionary<string, object?> { ["since"] = seqs[25] },
        });
        var recentJoined = await recent.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);
        Assert.False(recentJoined.Payload!["truncated"]!.GetValue<bool>());
        Assert.Equal(4, recentJoined.Payload!["replayed"]!.GetValue<int>());

        await client.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = room });
        var state = await client.WaitForAsync(f => f.Type == MessageTypes.RoomState);
        Assert.Equal(seqs[^1], state.Seq);
        Assert.Equal(29, Assert.Single(state.Payload!["messages"]!.AsArray())!["payload"]!.GetValue<int>());
    }

    [Fact]
    public async Task Connected_clients_lose_nothing_when_nats_server_is_killed_and_restarted_during_a_publish_run()
    {
        await using var worker = await WorkerHost.StartAsync(_nats);
        var room = Names.Room();
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var msgpack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await json.JoinAndWaitAsync(room);
        await msgpack.JoinAndWaitAsync(room);

        const int total = 300;
        var acked = new List<ulong>();
        await using var backend = new NatsConnection(new NatsOpts { Url = _nats.Url, MaxReconnectRetry = -1 });
        var js = new NatsJSContext(backend);
        var restarted = Task.CompletedTask;
        for (var i = 0; i < total; i++)
        {
            if (i == total / 3)
            {
                restarted = _nats.RestartAsync(TimeSpan.FromSeconds(1));
            }

            // A backend retries with the same message id until the stream acknowledges it.
            while (true)
            {
                try
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    var ack = await js.PublishAsync($"rooms.{room}", System.Text.Encoding.UTF8.GetBytes(i.ToString()),
                        opts: new NatsJSPubOpts { MsgId = $"restart-{room}-{i}" }, cancellationToken: cts.Token);
                    // A duplicate ack (the first ack was lost in the crash) is a success, with the original seq.
                    Assert.Null(ack.Error);
                    acked.Add(ack.Seq);
                    break;
                }
                catch (Exception ex) when (ex is NatsException or OperationCanceledException or TimeoutException)
                {
                    await Task.Delay(100);
                }
            }

            await Task.Delay(5);
        }

        await restarted;

        // The truth is what the stream holds for the room: exactly the acknowledged messages.
        var stored = new List<ulong>();
        var consumer = await js.CreateOrderedConsumerAsync("ROOMS", new NatsJSOrderedConsumerOpts { FilterSubjects = [$"rooms.{room}"] });
        await foreach (var msg in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 10_000 }))
        {
            stored.Add(msg.Metadata!.Value.Sequence.Stream);
        }

        Assert.Equal(acked, stored);
        foreach (var client in new[] { json, msgpack })
        {
            var received = await client.CollectAsync(stored.Count, f => f.Type == NatsSubjects.DefaultType, TimeSpan.FromSeconds(30));
            Assert.Equal(stored, received.Select(f => f.Seq));
            Assert.Equal(Enumerable.Range(0, total), received.Select(f => f.Payload!.GetValue<int>()));
            Assert.True(await client.NothingArrivesAsync(f => f.Type == NatsSubjects.DefaultType, TimeSpan.FromMilliseconds(300)));
        }

    }

    [Fact]
    public async Task A_fast_burst_reaches_a_room_complete_and_in_stream_order_with_the_smallest_backlog()
    {
        // Live messages are dispatched as the subscription receives them; only while a gap is filled do they wait, in
        // a backlog of 16 here. A fast burst arrives complete, each message once, in stream order.
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:Nats:RoomFeedCapacity", "16"));
        var room = Names.Room();
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await client.JoinAndWaitAsync(room);

        await using var backend = new NatsConnection(new NatsOpts { Url = _nats.Url });
        var js = new NatsJSContext(backend);
        const int total = 3000;
        var pending = new List<Task<NATS.Client.JetStream.Models.PubAckResponse>>();
        for (var i = 0; i < total; i++)
        {
            pending.Add(js.PublishAsync($"rooms.{room}", new byte[200]).AsTask());
        }

        var acks = await Task.WhenAll(pending);
        var stored = acks.Select(a => a.Seq).Order().ToList();
        var received = await client.CollectAsync(total, f => f.Room == room && f.Type == NatsSubjects.DefaultType, TimeSpan.FromSeconds(60));
        Assert.Equal(stored, received.Select(f => f.Seq));
        Assert.True(await client.NothingArrivesAsync(f => f.Type == NatsSubjects.DefaultType, TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Readiness_follows_the_nats_connection_while_liveness_stays_up()
    {
        await using var worker = await WorkerHost.StartAsync(_nats);
        using var http = new HttpClient { BaseAddress = worker.HttpUrl };
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/readyz")).StatusCode);

        _nats.Kill();
        await Eventually.TrueAsync(async () => (await http.GetAsync("/readyz")).StatusCode == System.Net.HttpStatusCode.ServiceUnavailable);
        var body = await (await http.GetAsync("/readyz")).Content.ReadAsStringAsync();
        Assert.Contains("nats", body, StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.OK, (await http.GetAsync("/healthz")).StatusCode);

        await _nats.RestartAsync(TimeSpan.Zero);
        await Eventually.TrueAsync(async () => (await http.GetAsync("/readyz")).StatusCode == System.Net.HttpStatusCode.OK, TimeSpan.FromSeconds(20));
    }
}
