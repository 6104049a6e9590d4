using System.Net;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Tests.Client;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Hosting;
using Microsoft.Extensions.Logging;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>The join path's warm-up before readiness. Its own nats-server: the test counts what is left on it.</summary>
public sealed class WarmUpTests : IAsyncLifetime
{
    private NatsServerProcess _nats = null!;

    public async Task InitializeAsync() => _nats = await NatsServerProcess.StartAsync();

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    [Fact]
    public async Task The_worker_is_not_ready_until_its_join_warm_up_has_run_and_the_warm_up_leaves_no_subscription_consumer_or_message_behind()
    {
        await using var worker = await WorkerHost.StartAsync(
            _nats,
            ("Bridge:WarmUp:Enabled", "true"),
            // Long enough that the first probe comes while it runs: 8 rounds of 120 rooms once ended before the first
            // probe (87 ms in all), and no 503 was seen.
            ("Bridge:WarmUp:Rooms", "1000"),
            ("Bridge:WarmUp:MinRounds", "40"),
            ("Bridge:WarmUp:MaxRounds", "40"),
            ("Bridge:WarmUp:Timeout", "00:02:00"));
        var warmUp = worker.Get<JoinWarmUp>();
        using var http = new HttpClient { BaseAddress = worker.HttpUrl };

        // Probed from the start, as a load balancer would: every answer before the first 200 is a 503 that says why.
        var notReady = new List<string>();
        await Eventually.TrueAsync(
            async () =>
            {
                var response = await http.GetAsync("/readyz");
                if (response.StatusCode == HttpStatusCode.OK)
                {
                    return true;
                }

                Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
                notReady.Add(await response.Content.ReadAsStringAsync());
                return false;
            },
            TimeSpan.FromSeconds(120));
        Assert.True(warmUp.Completed, "ready before the warm-up ended");
        Assert.Contains(notReady, body => body.Contains("warming up", StringComparison.Ordinal));
        Assert.Equal(40 * 1000, warmUp.Joins);

        // Every warm-up room was left: the worker holds no subscription on a warm-up room's live subject.
        await Eventually.TrueAsync(async () => !(await SubscriptionsAsync(worker.Id)).Any(s => s.Contains(JoinWarmUp.RoomPrefix, StringComparison.Ordinal)));
        // It published nothing and read no history through a consumer.
        await using var client = new NatsConnection(new NatsOpts { Url = _nats.Url });
        var stream = await new NatsJSContext(client).GetStreamAsync("ROOMS");
        Assert.Equal(0L, stream.Info.State.Messages);
        Assert.Equal(0, stream.Info.State.ConsumerCount);
    }

    [Fact]
    public async Task The_warm_up_joins_through_the_WebSocket_transport_in_both_formats_within_the_frame_burst_and_closes_each_socket_normally()
    {
        var logs = new CapturingLoggerProvider();
        await using var worker = await WorkerHost.StartAsync(
            _nats,
            builder => builder.Logging.AddProvider(logs),
            // The sockets' open and close events are debug logs.
            ("Logging:LogLevel:Bridge.Worker.Transports.WebSockets", "Debug"),
            ("Bridge:WarmUp:Enabled", "true"),
            ("Bridge:WarmUp:Rooms", "60"),
            ("Bridge:WarmUp:MinRounds", "2"),
            ("Bridge:WarmUp:MaxRounds", "2"),
            ("Bridge:WarmUp:Timeout", "00:02:00"),
            // A join and a leave per room: 10 rooms per warm-up connection, so none of its frames is rate limited.
            ("Bridge:Limits:MessageBurst", "20"));
        var warmUp = worker.Get<JoinWarmUp>();
        await Eventually.TrueAsync(() => warmUp.Completed, TimeSpan.FromSeconds(120));
        Assert.Equal(2 * 60, warmUp.Joins);

        // Each round's 60 rooms over 6 sockets pumped by the WebSocket transport's loops: JSON, then MessagePack.
        var opened = Messages(logs, 3001);
        Assert.Equal(6, opened.Count(m => m.EndsWith($"({Subprotocols.Json})", StringComparison.Ordinal)));
        Assert.Equal(6, opened.Count(m => m.EndsWith($"({Subprotocols.MessagePack})", StringComparison.Ordinal)));
        var closed = Messages(logs, 3002);
        Assert.Equal(12, closed.Count);
        Assert.All(closed, m => Assert.Contains("closed with 1000", m, StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Events, e => e.Id is 4111 or 4112);
    }

    [Fact]
    public async Task The_warm_up_tokens_are_well_formed_and_refused_by_the_token_check_at_their_signature()
    {
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:WarmUp:Enabled", "false"));
        var validator = worker.Get<Bridge.Worker.Security.TokenValidator>();
        foreach (var token in JoinWarmUp.RefusedTokens)
        {
            var check = await validator.ValidateAsync(token);
            Assert.Null(check.Identity);
            // Parsed and refused at the signature (or the key's algorithm): the path a client's token takes, not a shortcut.
            Assert.Contains(check.Reason, new[] { "signature", "algorithm" });
        }
    }

    [Fact]
    public async Task Without_the_warm_up_the_worker_is_ready_with_no_warm_up_join()
    {
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:WarmUp:Enabled", "false"));
        using var http = new HttpClient { BaseAddress = worker.HttpUrl };
        await Eventually.TrueAsync(async () => (await http.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK);
        Assert.True(worker.Get<JoinWarmUp>().Completed);
        Assert.Equal(0, worker.Get<JoinWarmUp>().Joins);
    }

    /// <summary>The messages of event <paramref name="id"/> about warm-up connections.</summary>
    private static List<string> Messages(CapturingLoggerProvider logs, int id) =>
        [.. logs.Events.Where(e => e.Id == id && e.Message.Contains("warmup-", StringComparison.Ordinal)).Select(e => e.Message)];

    private async Task<List<string>> SubscriptionsAsync(string workerId)
    {
        var connz = await _nats.MonitorAsync("/connz?subs=1");
        return [.. connz["connections"]!.AsArray()
            .Where(c => c!["name"]?.GetValue<string>() == $"bridge-worker {workerId}")
            .SelectMany(c => c!["subscriptions_list"]?.AsArray() ?? new JsonArray())
            .Select(s => s!.GetValue<string>())];
    }
}
