using System.Net;
using System.Text.Json.Nodes;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Hosting;
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
            ("Bridge:WarmUp:Rooms", "120"),
            ("Bridge:WarmUp:MinRounds", "8"),
            ("Bridge:WarmUp:MaxRounds", "8"),
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
        Assert.Equal(8 * 120, warmUp.Joins);

        // Every warm-up room was left: the worker holds no subscription on a warm-up room's live subject.
        await Eventually.TrueAsync(async () => !(await SubscriptionsAsync(worker.Id)).Any(s => s.Contains(JoinWarmUp.RoomPrefix, StringComparison.Ordinal)));
        // It published nothing and read no history through a consumer.
        await using var client = new NatsConnection(new NatsOpts { Url = _nats.Url });
        var stream = await new NatsJSContext(client).GetStreamAsync("ROOMS");
        Assert.Equal(0L, stream.Info.State.Messages);
        Assert.Equal(0, stream.Info.State.ConsumerCount);
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

    private async Task<List<string>> SubscriptionsAsync(string workerId)
    {
        var connz = await _nats.MonitorAsync("/connz?subs=1");
        return [.. connz["connections"]!.AsArray()
            .Where(c => c!["name"]?.GetValue<string>() == $"bridge-worker {workerId}")
            .SelectMany(c => c!["subscriptions_list"]?.AsArray() ?? new JsonArray())
            .Select(s => s!.GetValue<string>())];
    }
}
