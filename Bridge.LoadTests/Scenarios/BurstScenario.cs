using System.Globalization;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Bursts larger than the send queue (docs/benchmarks.md, "bursts"): N subscribers in one room (MessagePack by
/// default: a plain receive loop), a backend publishing 64-byte messages through JetStream as fast as it can (256 in
/// flight), bursts of increasing size in one run against the same servers, the first being the baseline. A member
/// whose queue fills reads the room from the stream until it has caught up: nobody may be closed, and nothing lost
/// or seen twice. Per burst: delivered/s and its ratio to the baseline, lost, duplicated, closed, the catch-ups the
/// worker counted (members that fell behind: the burst really was larger than the queue) and the worker's RSS growth
/// over the burst (peak during it minus before it).
/// </summary>
internal sealed class BurstScenario(ScenarioSpec spec, string configuration, IReadOnlyList<int> bursts, BridgeTransport transport) : IScenario
{
    public ScenarioSpec Spec => spec;

    /// <summary>The metric keys of one burst, e.g. <c>lost_10000</c>.</summary>
    public static string Key(string metric, int burst) => $"{metric}_{burst.ToString(CultureInfo.InvariantCulture)}";

    public async Task RunAsync(ScenarioContext ctx)
    {
        // Retention holds the largest burst twice over: members behind by a whole burst read it from the stream (at the
        // default 10,000 per room, a 100,000 burst would leave them truncated, which is retention, not catch-up).
        var retention = Math.Max(10_000L, 2L * bursts.Max());
        await using var target = new BridgeTarget(configuration, transport, ("Bridge:Nats:MaxMessagesPerRoom", retention.ToString(CultureInfo.InvariantCulture)));
        await target.StartAsync(ctx);
        var subscribers = await ctx.ConnectAsync((_, ct) => target.SubscribeAsync([0], ctx.Stats, ct));
        try
        {
            ctx.Metric("subscribers", $"{target.Name}: subscribers connected and joined", subscribers.Count);
            await using var publisher = await target.CreatePublisherAsync(ctx.Stats, ctx.Token);
            long seq = 0;
            double? baseline = null;
            foreach (var burst in bursts)
            {
                ctx.Status = $"burst of {burst:N0}";
                var closedBefore = Closed(ctx.Stats);
                var duplicatedBefore = ctx.Stats.Duplicated;
                var catchUpsBefore = await target.Worker.MetricAsync("bridge_catchups_total", ctx.Token);
                var rssBefore = target.Worker.RssBytes();
                var rssPeak = rssBefore;
                using var sampling = CancellationTokenSource.CreateLinkedTokenSource(ctx.Token);
                var sampler = Task.Run(async () =>
                {
                    while (!sampling.IsCancellationRequested)
                    {
                        rssPeak = Math.Max(rssPeak, target.Worker.RssBytes());
                        await Task.Delay(100, CancellationToken.None);
                    }
                });

                var result = await ctx.InjectAsync(
                    (_, ts) => publisher.PublishAsync(0, LoadPayload.Create(ts, seq++, 0), ctx.Token),
                    subscribers.Count,
                    () => publisher.FlushAsync(ctx.Token),
                    new LoadSimulation.Burst(burst));
                await sampling.CancelAsync();
                await sampler;

                baseline ??= result.DeliveredPerSecond;
                var fellBehind = await target.Worker.MetricAsync("bridge_catchups_total", ctx.Token) - catchUpsBefore;
                // Every delivery has arrived (the drain is over): a member still reading the stream now never rejoined
                // the live dispatch. The gauge is read a few times, as a member rejoins on its next read.
                var lagging = await LaggingAfterAsync(target, ctx.Token);
                var label = $"burst of {burst:N0}";
                ctx.Metric(Key("delivered_per_s", burst), $"{label}: delivered/s", result.DeliveredPerSecond, "msg/s");
                ctx.Metric(Key("ratio", burst), $"{label}: delivered/s ÷ the {bursts[0]:N0}-message burst's", result.DeliveredPerSecond / baseline.Value);
                ctx.Metric(Key("lost", burst), $"{label}: lost", result.Lost);
                ctx.Metric(Key("duplicated", burst), $"{label}: duplicated", ctx.Stats.Duplicated - duplicatedBefore);
                ctx.Metric(Key("closed", burst), $"{label}: subscribers closed by the worker", Closed(ctx.Stats) - closedBefore);
                ctx.Metric(Key("fell_behind", burst), $"{label}: catch-ups (members that fell behind and read the stream)", fellBehind);
                ctx.Metric(Key("lagging_after", burst), $"{label}: members still reading the stream after every delivery arrived (not back on the live dispatch)", lagging);
                ctx.Metric(Key("rss_growth_mb", burst), $"{label}: worker RSS growth (peak during − before)", (rssPeak - rssBefore) / 1048576.0, "MB");
                ctx.Metric(Key("p99_ms", burst), $"{label}: latency p99 (publish → receive)", result.P99Ms, "ms");
                if (burst == bursts[^1] && bursts.Count > 1)
                {
                    ctx.Goal(Goals.Burst, Closed(ctx.Stats) == 0 ? result.DeliveredPerSecond / baseline.Value : 0);
                }
            }
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(subscribers.Select(s => s.DisposeAsync().AsTask()));
        }
    }

    private static async Task<double> LaggingAfterAsync(BridgeTarget target, CancellationToken cancellationToken)
    {
        var lagging = 0.0;
        for (var attempt = 0; attempt < 20; attempt++)
        {
            lagging = await target.Worker.MetricAsync("bridge_members_lagging", cancellationToken);
            if (lagging == 0)
            {
                break;
            }

            await Task.Delay(250, cancellationToken);
        }

        return lagging;
    }

    private static long Closed(ScenarioStats stats) =>
        stats.Errors.Where(e => e.Key.StartsWith("closed by server", StringComparison.Ordinal)).Sum(e => e.Value);
}
