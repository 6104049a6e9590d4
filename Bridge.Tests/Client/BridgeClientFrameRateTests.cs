using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>
/// The worker's frame rate limit (docs/protocol.md §1.1) and the publish queue: the worker announces the limit in
/// <c>welcome</c>, the client paces its publishes to it, so a full offline queue flushed on connect is stored whole and
/// in call order, and a publish refused <c>rate_limited</c> is sent again before any later one (breaker-s16 M2).
/// </summary>
public sealed class BridgeClientFrameRateTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly TimeSpan FlushLimit = TimeSpan.FromSeconds(120);

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Welcome_announces_the_frame_rate_limit_of_a_websocket_and_an_sse_welcome_none(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(
            nats.Server, ("Bridge:Limits:MessagesPerSecond", "7"), ("Bridge:Limits:MessageBurst", "13"));
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);

        var welcome = await client.NextAsync();

        Assert.Equal(MessageTypes.Welcome, welcome.Type);
        Assert.Equal(7, welcome.Payload!["framesPerSecond"]!.GetValue<int>());
        Assert.Equal(13, welcome.Payload!["frameBurst"]!.GetValue<int>());

        // SSE: the client publishes over HTTP, whose requests the frame limit does not count.
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, Names.Room("rate"));
        var sseWelcome = (await sse.WaitForAsync(e => e.Event == MessageTypes.Welcome)).Json["payload"]!.AsObject();
        Assert.True(sseWelcome.ContainsKey("maxFrameBytes")); // a current welcome...
        Assert.False(sseWelcome.ContainsKey("framesPerSecond")); // ...without a frame rate
        Assert.False(sseWelcome.ContainsKey("frameBurst"));
    }

    [Fact]
    public async Task A_full_offline_queue_of_1000_publishes_is_stored_whole_once_each_and_in_call_order_under_the_default_frame_rate()
    {
        // The defaults the tests' WorkerHost lifts: 50 frames a second, a burst of 100.
        await using var worker = await WorkerHost.StartAsync(
            nats.Server, ("Bridge:Limits:MessagesPerSecond", "50"), ("Bridge:Limits:MessageBurst", "100"));
        var room = Names.Room("flush");
        var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        await using var client = NewClient(worker.WebSocketUrl, BridgeFormat.Json, o => o.LoggerFactory = loggerFactory);
        var publishes = Enumerable.Range(0, 1000).Select(i => client.PublishAsync(room, "queued.message", new { n = i })).ToList();
        Assert.Equal(1000, client.PendingPublishes); // the whole default queue, made before connecting

        await client.ConnectAsync();
        var results = await Task.WhenAll(publishes.Select(async p =>
        {
            try
            {
                return (Ack: await p, Error: (string?)null);
            }
            catch (BridgeException e)
            {
                return (Ack: (Ack?)null, Error: e.Code);
            }
        })).WaitAsync(FlushLimit);

        Assert.Equal(Array.Empty<string>(), results.Where(r => r.Error is not null).Select(r => r.Error!)); // none failed
        var acks = results.Select(r => r.Ack!).ToList();
        Assert.All(acks, a => Assert.False(a.Duplicate));
        Assert.Equal(acks.Select(a => a.Seq).Order(), acks.Select(a => a.Seq)); // stored in call order
        // Paced within the announced rate: the worker refused none (PublishRetry, 7009, logs each refusal).
        Assert.DoesNotContain(logs.Events, e => e.Id == 7009);

        // Read the room back: each stored once, in call order.
        await using var reader = NewClient(worker.WebSocketUrl, BridgeFormat.Json);
        await reader.ConnectAsync();
        var stored = await ReadAsync(await reader.JoinAsync(room, since: 0), 1000);
        Assert.Equal(Enumerable.Range(0, 1000), stored.Select(m => m.Payload!.Value.GetProperty("n").GetInt32()));
        Assert.Equal(acks.Select(a => a.Seq), stored.Select(m => m.Seq));
    }

    [Fact]
    public async Task A_publish_refused_rate_limited_is_sent_again_before_any_later_one_and_is_not_an_attempt()
    {
        // A worker that announces no rate (the client cannot pace) refuses the second publish, and, while the client
        // still has the later ones in flight, those too: as a worker whose bucket ran empty does.
        var received = new ConcurrentQueue<string>();
        var refusedAll = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var seq = 0UL;
            var firstRound = new List<JsonObject>();
            while (await socket.ReceiveAsync() is { } frame)
            {
                var id = frame["id"]!.GetValue<string>();
                received.Enqueue(id);
                if (received.Count <= 5)
                {
                    firstRound.Add(frame);
                    if (id == "p2")
                    {
                        await socket.SendAsync(Refused(ErrorCodes.RateLimited, id));
                    }

                    if (firstRound.Count < 5)
                    {
                        continue;
                    }

                    // p2 refused long before the others are answered: the client must wait for their answers.
                    await Task.Delay(300);
                    await socket.SendAsync(Acked(frame: firstRound[0], ++seq));
                    foreach (var later in firstRound.Skip(2))
                    {
                        await socket.SendAsync(Refused(ErrorCodes.RateLimited, later["id"]!.GetValue<string>()));
                    }

                    refusedAll.TrySetResult();
                    continue;
                }

                await socket.SendAsync(Acked(frame, ++seq));
            }
        });
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(100);
            o.MaxPublishAttempts = 1; // a rate_limited answer is not an attempt: it must not fail the publish
        });
        var publishes = Enumerable.Range(1, 5).Select(i => client.PublishAsync("r", "chat.message", new { i }, id: $"p{i}")).ToList();
        await client.ConnectAsync();

        var acks = await Task.WhenAll(publishes).WaitAsync(WaitLimit);

        Assert.True(refusedAll.Task.IsCompleted);
        // Nothing was sent again before every publish sent after p2 was answered; then p2 first, the others in order.
        Assert.Equal(["p1", "p2", "p3", "p4", "p5", "p2", "p3", "p4", "p5"], received);
        Assert.Equal([1UL, 2, 3, 4, 5], acks.Select(a => a.Seq));
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task A_publish_cancelled_in_flight_and_then_refused_rate_limited_is_dropped_not_sent_again()
    {
        // p1 is in flight when its caller cancels (it may be stored: kept); its answer is then rate_limited, so it was
        // not stored: it must be dropped as a cancelled publish never sent is, not sent again behind the caller's back.
        var received = new ConcurrentQueue<string>();
        var p1Arrived = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var refuseP1 = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var seq = 0UL;
            while (await socket.ReceiveAsync() is { } frame)
            {
                var id = frame["id"]!.GetValue<string>();
                received.Enqueue(id);
                if (id == "p1" && received.Count == 1)
                {
                    p1Arrived.TrySetResult();
                    await refuseP1.Task;
                    await socket.SendAsync(Refused(ErrorCodes.RateLimited, id));
                    continue;
                }

                await socket.SendAsync(Acked(frame, ++seq));
            }
        });
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(100);
        });
        await client.ConnectAsync();
        using var cts = new CancellationTokenSource();
        var p1 = client.PublishAsync("r", "chat.message", new { i = 1 }, id: "p1", cancellationToken: cts.Token);
        await p1Arrived.Task.WaitAsync(WaitLimit);

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => p1);
        Assert.Equal(1, client.PendingPublishes); // in flight: it may be stored, so it is kept until answered
        refuseP1.SetResult();
        // The refusal precedes p2's ack on the wire: by that ack, p1 is dropped, not waiting to be sent again.
        var ack = await client.PublishAsync("r", "chat.message", new { i = 2 }, id: "p2").WaitAsync(WaitLimit);

        Assert.Equal(1UL, ack.Seq);
        Assert.Equal(0, client.PendingPublishes);
        Assert.Equal(["p1", "p2"], received);
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task Cancelling_a_publish_waiting_to_be_retried_sends_the_publishes_it_held_back_at_once()
    {
        // A worker that announces no rate refuses p1 rate_limited: p1 waits for its backoff and holds p2 back (call
        // order). Cancelling p1 drops it (never stored); p2 must go then, not at the watchdog's next tick: the clock is
        // frozen (a FakeTimeProvider never advanced), so no tick and no backoff ever ends in this test.
        var received = new ConcurrentQueue<string>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var seq = 0UL;
            while (await socket.ReceiveAsync() is { } frame)
            {
                var id = frame["id"]!.GetValue<string>();
                received.Enqueue(id);
                await socket.SendAsync(id == "p1" ? Refused(ErrorCodes.RateLimited, id) : Acked(frame, ++seq));
            }
        });
        var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.TimeProvider = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
            o.LoggerFactory = loggerFactory;
        });
        await client.ConnectAsync();
        using var cts = new CancellationTokenSource();
        var p1 = client.PublishAsync("r", "chat.message", new { i = 1 }, id: "p1", cancellationToken: cts.Token);
        await Eventually.TrueAsync(() => logs.Events.Any(e => e.Id == 7009), WaitLimit, "p1 refused and waiting for its retry");
        var p2 = client.PublishAsync("r", "chat.message", new { i = 2 }, id: "p2");
        await Task.Delay(200);
        Assert.Equal(["p1"], received); // p2 is held behind p1

        await cts.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => p1);
        var ack = await p2.WaitAsync(WaitLimit);

        Assert.Equal(1UL, ack.Seq);
        Assert.Equal(["p1", "p2"], received);
        Assert.Equal(0, client.PendingPublishes);
    }

    [Fact]
    public async Task A_publish_refused_rate_limited_is_not_sent_again_before_the_workers_next_refill_even_when_the_clients_own_bucket_has_refilled()
    {
        // The worker refills its bucket every ⌈50 / 10⌉ / 50 s = 100 ms (TokenBuckets.PerSecond); the client's own bucket
        // refills on a timer of its own, at any time after the refusal. The clock the hold is measured on is frozen (a
        // FakeTimeProvider): the client's bucket refills meanwhile (its own timer), and p2's publish flushes the queue,
        // so p1 would go again at once if only the client's bucket held it. It must wait until the clock has moved
        // past the worker's refill interval.
        var received = new ConcurrentQueue<string>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.SendAsync(new()
            {
                ["type"] = MessageTypes.Welcome,
                ["payload"] = new Dictionary<string, object?>
                {
                    ["connectionId"] = "c",
                    ["serverId"] = "scripted",
                    ["heartbeatMs"] = 30000,
                    ["protocol"] = 1,
                    ["user"] = "anonymous",
                    ["framesPerSecond"] = 50,
                    ["frameBurst"] = 100,
                },
            });
            var seq = 0UL;
            while (await socket.ReceiveAsync() is { } frame)
            {
                var id = frame["id"]!.GetValue<string>();
                received.Enqueue(id);
                await socket.SendAsync(received.Count == 1 ? Refused(ErrorCodes.RateLimited, id) : Acked(frame, ++seq));
            }
        });
        var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        var time = new Microsoft.Extensions.Time.Testing.FakeTimeProvider();
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.TimeProvider = time;
            o.LoggerFactory = loggerFactory;
        });
        await client.ConnectAsync();
        var p1 = client.PublishAsync("r", "chat.message", new { i = 1 }, id: "p1");
        await Eventually.TrueAsync(() => logs.Events.Any(e => e.Id == 7009), WaitLimit, "p1 refused rate_limited");
        await Task.Delay(300); // the client's own bucket refills (every 100 ms, on its own timer)
        var p2 = client.PublishAsync("r", "chat.message", new { i = 2 }, id: "p2"); // flushes the queue
        await Task.Delay(200);
        Assert.Equal(["p1"], received); // held: the worker's refill interval has not passed on the client's clock

        time.Advance(TimeSpan.FromMilliseconds(100));
        var acks = await Task.WhenAll(p1, p2).WaitAsync(WaitLimit);

        Assert.Equal([1UL, 2], acks.Select(a => a.Seq));
        Assert.Equal(["p1", "p1", "p2"], received);
    }

    private static Dictionary<string, object?> Refused(string code, string id) => new()
    {
        ["type"] = MessageTypes.Error,
        ["payload"] = new Dictionary<string, object?> { ["code"] = code, ["message"] = "too many frames; slow down and retry with the same id", ["ref"] = id },
    };

    private static Dictionary<string, object?> Acked(JsonObject frame, ulong seq) => new()
    {
        ["type"] = MessageTypes.Ack,
        ["room"] = frame["room"]!.GetValue<string>(),
        ["id"] = frame["id"]!.GetValue<string>(),
        ["seq"] = seq,
        ["payload"] = new Dictionary<string, object?> { ["duplicate"] = false },
    };
}
