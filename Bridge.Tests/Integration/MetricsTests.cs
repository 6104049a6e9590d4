using System.Globalization;
using System.Text.RegularExpressions;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Integration;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class MetricsCollection
{
    // Instruments are observed by meter name across the process: scraped alone, with no other worker running.
    public const string Name = "metrics";
}

[Collection(MetricsCollection.Name)]
public sealed class MetricsTests : IAsyncLifetime
{
    private Bridge.Testing.NatsServerProcess _nats = null!;

    public async Task InitializeAsync() => _nats = await Bridge.Testing.NatsServerProcess.StartAsync();

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    [Fact]
    public async Task Metrics_endpoint_counters_move_as_a_scripted_scenario_runs()
    {
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:Connections:SendQueueCapacity", "64"), ("Bridge:Connections:SendQueueMaxBytes", "1048576"),
            ("Bridge:Connections:StallTimeout", "00:00:02"));
        using var http = new HttpClient { BaseAddress = worker.HttpUrl, Timeout = TimeSpan.FromSeconds(5) };
        Task<double> Metric(string name, string labels = "") => MetricsScrape.SumAsync(http, name, labels);

        var room = Names.Room();
        await using var ws = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, room);
        await ws.JoinAndWaitAsync(room);
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        for (var i = 0; i < 3; i++)
        {
            await ws.PublishAsync(room, i);
        }

        await ws.CollectAsync(3, f => f.Type == "chat.message");
        await sse.CollectAsync(3, e => e.Event == "chat.message");
        await ws.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room + "x", ["payload"] = new Dictionary<string, object?> { ["since"] = 0 } });
        await ws.WaitForAsync(f => f.Type == MessageTypes.RoomJoined && f.Room == room + "x");

        await Eventually.TrueAsync(async () => await Metric("bridge_connections_opened_total", "transport=\"websocket\"") >= 1 &&
                                              await Metric("bridge_connections_active", "transport=\"sse\"") == 1 &&
                                              await Metric("bridge_messages_in_total", "transport=\"websocket\"") == 3 &&
                                              await Metric("bridge_messages_out_total", "transport=\"websocket\"") == 3 &&
                                              await Metric("bridge_messages_out_total", "transport=\"sse\"") == 3 &&
                                              await Metric("bridge_rooms_active") == 2 &&
                                              await Metric("bridge_resumes_total") == 1 &&
                                              await Metric("bridge_delivery_latency_seconds_count") == 6 &&
                                              await Metric("bridge_sent_bytes_total") > 0);

        // A batch subprotocol's arrays, and the envelopes in them (its welcome and room.joined at least).
        await using (var batched = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.JsonBatch))
        {
            await batched.JoinAndWaitAsync(Names.Room());
            await Eventually.TrueAsync(async () => await Metric("bridge_ws_array_messages_total") >= 1 &&
                                                  await Metric("bridge_ws_array_envelopes_total") >= 2);
        }

        // A stalled client fills its queue: it falls behind (a catch-up is counted and it lags), then, having had
        // nothing written for StallTimeout, it is closed with 4008: a stalled close is counted, and active drops.
        await using var stalled = await TestClient.ConnectAsync(worker.WebSocketUrl, startReading: false, receiveBufferBytes: 4096);
        await stalled.JoinAsync(room);
        await Eventually.TrueAsync(() => worker.Get<Bridge.Worker.Rooms.RoomRegistry>().TryGet(room, out var r) && r.MemberCount == 3);
        // The publisher leaves first: its publishes are pipelined, and as a member it would get the flood back as
        // fast as it is stored, more than its own 1 MB queue holds on a busy machine.
        await ws.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = room });
        await ws.WaitForAsync(f => f.Type == MessageTypes.RoomLeft && f.Room == room);
        // 8 MB: more than the queue (1 MB) plus what the stalled client's socket buffers can hide.
        for (var i = 0; i < 500; i++)
        {
            await ws.PublishAsync(room, new string('x', 16_000));
        }

        await Eventually.TrueAsync(async () => await Metric("bridge_catchups_total", "transport=\"websocket\"") >= 1, TimeSpan.FromSeconds(20));
        await Eventually.TrueAsync(async () => await Metric("bridge_slow_consumer_closes_total") >= 1 &&
                                              await Metric("bridge_connections_closed_total", "code=\"4008\"") >= 1 &&
                                              await Metric("bridge_members_lagging") == 0, TimeSpan.FromSeconds(20));

        // A refused token and a refused origin are counted by reason.
        using (var refused = await http.GetAsync($"/poll?rooms={room}&access_token=not-a-jwt"))
        {
            Assert.Equal(System.Net.HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/poll?rooms={room}"))
        {
            request.Headers.Add("Origin", "https://evil.example");
            using var refused = await http.SendAsync(request);
            Assert.Equal(System.Net.HttpStatusCode.Forbidden, refused.StatusCode);
        }

        await Eventually.TrueAsync(async () => await Metric("bridge_auth_failures_total", "reason=\"malformed\"") +
                                              await Metric("bridge_auth_failures_total", "reason=\"signature\"") == 1 &&
                                              await Metric("bridge_auth_failures_total", "reason=\"origin\"") == 1);
    }

    [Fact]
    public async Task Metrics_name_the_service_bridge_worker_and_the_instance_by_the_worker_id()
    {
        await using var worker = await WorkerHost.StartAsync(_nats);
        using var http = new HttpClient { BaseAddress = worker.HttpUrl, Timeout = TimeSpan.FromSeconds(5) };

        var target = Assert.Single(await MetricsScrape.SeriesAsync(http, "target_info"));
        Assert.Contains(("service_name", "bridge-worker"), target.Labels);
        Assert.Contains(("service_instance_id", worker.Id), target.Labels); // Bridge:Worker:Id
    }

    [Fact]
    public async Task Rate_limit_refusals_are_counted_by_limit()
    {
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:Limits:MessagesPerSecond", "5"), ("Bridge:Limits:MessageBurst", "5"),
            ("Bridge:Limits:MaxConnectionsPerIp", "1"));
        using var http = new HttpClient { BaseAddress = worker.HttpUrl, Timeout = TimeSpan.FromSeconds(5) };
        await using var ws = await TestClient.ConnectAsync(worker.WebSocketUrl);
        for (var i = 0; i < 20; i++)
        {
            await ws.PublishAsync(Names.Room(), i, id: $"m{i}");
        }

        var limited = (await ws.CollectAsync(20, f => f.Type is MessageTypes.Ack or MessageTypes.Error)).Count(f => f.ErrorCode == ErrorCodes.RateLimited);
        Assert.True(limited >= 10, $"{limited} refused");
        using (var second = await http.GetAsync($"/poll?rooms={Names.Room()}"))
        {
            Assert.Equal(System.Net.HttpStatusCode.TooManyRequests, second.StatusCode);
        }

        var text = await http.GetStringAsync("/metrics");
        Assert.Matches($@"bridge_rate_limited_total\{{[^}}]*limit=""messages""[^}}]*\}} {limited}\b", text);
        Assert.Matches(@"bridge_rate_limited_total\{[^}]*limit=""ip_connections""[^}]*\} 1\b", text);
    }
}
