using System.Diagnostics;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// An IoT dashboard of many device rooms (issue 16), two ways in the same run, each on a fresh worker of the same
/// nats-server (so neither inherits the other's memory): one connection joins every device room with <c>latest</c>
/// (batch frames of 100 single joins), then one connection joins the pattern <c>bench.*</c> with <c>latest</c> (one
/// frame). For each: the time to the first full screen (every device's stored value and every <c>room.joined</c>),
/// the worker's subscriptions on the server, the worker's RSS growth, then delivered/s while a backend publishes at a
/// fixed rate spread over the devices. Goals: the pattern's first screen and its delivery against the single joins'.
/// </summary>
internal sealed class DashboardScenario(ScenarioSpec spec, string configuration, int devices, int rate) : IScenario
{
    private const string Pattern = "bench.*"; // every Rooms.Name(i) is bench.r{i}

    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var target = new BridgeTarget(configuration, BridgeTransport.Json);
        await target.StartAsync(ctx);
        await using var publisher = await target.CreatePublisherAsync(ctx.Stats, ctx.Token);

        // One stored reading per device: what `latest` returns.
        ctx.Status = $"storing a reading for each of {devices:N0} devices";
        for (var i = 0; i < devices; i++)
        {
            await publisher.PublishAsync(i, LoadPayload.Create(Stopwatch.GetTimestamp(), 0, i), ctx.Token);
        }

        await publisher.FlushAsync(ctx.Token);

        var singles = await PhaseAsync(ctx, target, target.Worker, publisher, "single joins", client =>
            Task.WhenAll(Enumerable.Range(0, (devices + 99) / 100).Select(b =>
                client.SendAsync("{\"type\":\"room.join\",\"payload\":{\"rooms\":[" +
                    string.Join(',', Enumerable.Range(b * 100, Math.Min(100, devices - (b * 100))).Select(i => $$"""{"room":"{{Rooms.Name(i)}}","latest":true}""")) +
                    "]}}", ctx.Token))), devices);

        await using var second = await WorkerProcess.StartAsync(target.Nats.Url, configuration, ("Bridge:Connections:MaxRoomsPerConnection", "10000"));
        ctx.Watch("worker-2", second.Pid);
        var pattern = await PhaseAsync(ctx, target, second, publisher, "pattern", client =>
            client.SendAsync("{\"type\":\"room.join\",\"room\":\"" + Pattern + "\",\"payload\":{\"latest\":true}}", ctx.Token), 1);

        ctx.Metric("devices", "device rooms", devices);
        ctx.Metric("rate", "publish rate spread over the devices", rate, "msg/s");
        foreach (var (name, p) in new[] { ("single", singles), ("pattern", pattern) })
        {
            ctx.Metric($"{name}_first_screen_ms", $"{name}: time to the first full screen (every latest value and room.joined)", p.FirstScreen.TotalMilliseconds, "ms");
            ctx.Metric($"{name}_subscriptions", $"{name}: the worker's subscriptions on nats-server", p.Subscriptions);
            ctx.Metric($"{name}_rss_growth_mb", $"{name}: worker RSS growth from the join to the end of delivery", p.RssGrowthMb, "MB");
            ctx.Metric($"{name}_delivered_per_s", $"{name}: delivered/s at {rate:N0} msg/s spread over the devices", p.DeliveredPerSecond, "msg/s");
            ctx.Metric($"{name}_missing", $"{name}: readings published and not delivered", p.Missing);
        }

        ctx.Goal(Goals.DashboardFirstScreen, pattern.FirstScreen / singles.FirstScreen);
        ctx.Goal(Goals.DashboardDelivery, pattern.DeliveredPerSecond / singles.DeliveredPerSecond);
        ctx.Goal(Goals.DashboardSubscriptions, pattern.Subscriptions);
    }

    private async Task<DashboardPhase> PhaseAsync(
        ScenarioContext ctx, BridgeTarget target, WorkerProcess worker, IRoomPublisher publisher, string name, Func<LoadClient, Task> join, int joins)
    {
        ctx.Phase = name;
        await using var client = await LoadClient.ConnectAsync(worker.WebSocketUrl, new LoadClientOptions(), ctx.Token);
        await client.FirstFrame;
        var subscriptionsBefore = await RoomActivationScenario.SettledWorkerSubscriptionsAsync(target.Nats, worker.Id, ctx.Token);
        var rssBefore = worker.RssBytes();

        ctx.Status = $"{name}: joining {devices:N0} devices with latest";
        var clock = Stopwatch.StartNew();
        await join(client);
        await Rooms.WaitAsync(() => client.Messages >= devices && client.Joined >= joins, $"{name}: every latest value and room.joined", ctx.Token);
        var firstScreen = clock.Elapsed;
        var subscriptions = await RoomActivationScenario.SettledWorkerSubscriptionsAsync(target.Nats, worker.Id, ctx.Token) - subscriptionsBefore;

        ctx.Status = $"{name}: publishing {rate:N0} msg/s over {devices:N0} devices";
        var before = client.Messages;
        clock.Restart();
        var published = await Pace.RunAsync(rate, spec.Duration, n =>
            publisher.PublishAsync((int)(n % devices), LoadPayload.Create(Stopwatch.GetTimestamp(), 1 + (n / devices), (int)(n % devices)), ctx.Token), ctx.Token);
        await publisher.FlushAsync(ctx.Token);
        var drain = Stopwatch.StartNew();
        while (client.Messages - before < published && drain.Elapsed < spec.Drain)
        {
            await Task.Delay(10, ctx.Token);
        }

        var delivered = client.Messages - before;
        var elapsed = clock.Elapsed;
        return new DashboardPhase(
            firstScreen, subscriptions, (worker.RssBytes() - rssBefore) / 1048576.0, delivered / elapsed.TotalSeconds, Math.Max(0, published - delivered));
    }

    private sealed record DashboardPhase(TimeSpan FirstScreen, long Subscriptions, double RssGrowthMb, double DeliveredPerSecond, long Missing);
}
