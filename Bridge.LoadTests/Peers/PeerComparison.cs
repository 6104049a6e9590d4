using System.Globalization;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Scenarios;

namespace Bridge.LoadTests.Peers;

/// <summary>
/// `make bench`'s peer comparison: the same fan-out workload, payload and receive-side accounting against Bridge
/// (JSON and MessagePack), SignalR + Redis and raw NATS WebSocket, one after another in the same run, each
/// measured and sampled the same way; then ratios. <c>--repeat N</c> runs the whole round N times to show the
/// spread (the machine is shared).
/// </summary>
internal static class PeerComparison
{

    /// <summary><c>peers</c> alone: the comparison, then its goal table.</summary>
    public static async Task<bool> RunAsync(Args a, string configuration, CancellationToken cancellationToken)
    {
        var reports = await CompareAsync(a, configuration, cancellationToken);
        var goalsMet = GoalTable.Write("peers", reports, a.Line);
        return reports.All(r => r.Passed) && (goalsMet || !a.Has("--fail-on-goals"));
    }

    /// <summary>Runs the comparison, writes results/peers.*, and returns every report (the summary first).</summary>
    public static async Task<IReadOnlyList<Report>> CompareAsync(Args a, string configuration, CancellationToken cancellationToken)
    {
        var subscribers = a.Int("--subscribers", 200);
        var rate = a.Int("--rate", 100);
        var bound = a.Double("--p99-bound-ms", 100);
        var burst = a.Int("--messages", 1000);
        var idle = a.Int("--idle", 20_000);
        var rooms = a.Int("--rooms", 10_000);
        var roomMessages = a.Int("--room-messages", 20_000);
        var repeat = a.Int("--repeat", 1);
        var only = a.String("--only");
        var targets = new (string Key, Func<IFanoutTarget> Create)[]
        {
            ("bridge-json", () => new BridgeTarget(configuration, BridgeTransport.Json)),
            ("bridge-msgpack", () => new BridgeTarget(configuration, BridgeTransport.MessagePack)),
            ("signalr", () => new SignalRTarget(configuration)),
            ("nats", () => new NatsWebSocketTarget()),
        };
        var names = targets.ToDictionary(t => t.Key, t => t.Create().Name);
        var values = new Dictionary<(string Target, string Metric), List<double>>();
        var reports = new List<Report>();
        void Keep(string target, string metric, Report r)
        {
            if (r.Metrics.TryGetValue(metric, out var v) && !double.IsNaN(v))
            {
                (values.TryGetValue((target, metric), out var list) ? list : values[(target, metric)] = []).Add(v);
            }
        }

        for (var run = 1; run <= repeat; run++)
        {
            foreach (var (key, create) in targets.Where(t => only is null || only.Split(',').Contains(t.Key)))
            {
                var bridge = key.StartsWith("bridge", StringComparison.Ordinal);
                IReadOnlyList<Threshold> correctness = bridge ? [Threshold.Zero("lost"), Threshold.Zero("duplicated")] : [];

                var fanout = await Runner.RunOneAsync(new PeerFanoutScenario(new ScenarioSpec($"peers-fanout-{key}-run{run}", $"{subscribers} subscribers, one room")
                {
                    WarmUp = TimeSpan.FromSeconds(1),
                    Duration = TimeSpan.FromSeconds(4),
                    MaxTime = TimeSpan.FromMinutes(4),
                    Load = [new LoadSimulation.KeepConstant(subscribers), new LoadSimulation.InjectAtRate(rate), new LoadSimulation.Burst(burst)],
                    Thresholds = correctness,
                    Command = a.Line,
                }, create, rate, bound, burst), cancellationToken);
                reports.Add(fanout);
                foreach (var m in new[] { "rate_p50_ms", "rate_p99_ms", "bound_delivered_per_s", "burst_delivered_per_s", "half_peak_p99_ms", "lost" })
                {
                    Keep(key, m, fanout);
                }

                var many = await Runner.RunOneAsync(new FanoutScenario(new ScenarioSpec($"peers-rooms-{key}-run{run}", $"{rooms:N0} rooms, one subscriber each")
                {
                    WarmUp = TimeSpan.FromSeconds(2),
                    Duration = TimeSpan.FromSeconds(30),
                    MaxTime = TimeSpan.FromMinutes(4),
                    Load = [new LoadSimulation.KeepConstant(100), new LoadSimulation.Burst(roomMessages)],
                    Thresholds = correctness,
                    Command = a.Line,
                }, create, rooms), cancellationToken);
                reports.Add(many);
                Keep(key, "delivered_per_s", many);

                var idleReport = await Runner.RunOneAsync(new IdleConnectionsScenario(new ScenarioSpec($"peers-idle-{key}-run{run}", $"{idle:N0} idle WebSockets")
                {
                    Duration = TimeSpan.FromSeconds(3),
                    MaxTime = TimeSpan.FromMinutes(5),
                    Load = [new LoadSimulation.KeepConstant(idle)],
                    Command = a.Line,
                }, create), cancellationToken);
                reports.Add(idleReport);
                Keep(key, "kb_per_connection", idleReport);
                Keep(key, "idle_connections", idleReport);
            }
        }

        var summary = Summarize(values, names, a.Line, subscribers, rate, bound, rooms, repeat);
        reports.Insert(0, summary);
        Report.WriteFiles("peers", reports);
        Console.WriteLine(summary.ToMarkdown());
        return reports;
    }

    private static Report Summarize(Dictionary<(string Target, string Metric), List<double>> values, Dictionary<string, string> names, string command, int subscribers, int rate, double bound, int rooms, int repeat)
    {
        var r = new Report("peers", command);
        r.Add("machine", Report.MachineLine() + "; load clients and every server on the same cores (shared with other work)");
        r.Add("runs", $"{repeat} (values: median, every run in brackets)");
        var rows = new (string Metric, string Label, bool HigherIsBetter)[]
        {
            ("burst_delivered_per_s", $"fan-out, 1 room × {subscribers} subscribers: delivered/s saturated", true),
            ("bound_delivered_per_s", $"fan-out: highest delivered/s with p99 ≤ {bound:N0} ms (rate steps)", true),
            ("rate_p50_ms", $"p50 at {rate} msg/s ({rate * subscribers:N0} deliveries/s), ms", false),
            ("rate_p99_ms", $"p99 at {rate} msg/s ({rate * subscribers:N0} deliveries/s), ms", false),
            ("half_peak_p99_ms", "p99 at half the saturated rate, ms", false),
            ("delivered_per_s", $"{rooms:N0} rooms × 1 subscriber: delivered/s saturated", true),
            ("kb_per_connection", "gateway memory per idle WebSocket, KB", false),
            ("idle_connections", "idle connections held", true),
        };
        foreach (var (metric, label, _) in rows)
        {
            r.Add(label, string.Join(" | ", names.Keys.Select(t => $"{names[t]}: {Cell(values, t, metric)}")));
        }

        foreach (var bridge in new[] { "bridge-json", "bridge-msgpack" })
        {
            foreach (var peer in new[] { "signalr", "nats" })
            {
                foreach (var (metric, label, higher) in rows.Where(x => x.Metric != "idle_connections"))
                {
                    if (Median(values, bridge, metric) is { } b && Median(values, peer, metric) is { } p && p > 0)
                    {
                        r.Metric($"ratio_{bridge}_{peer}_{metric}", $"ratio {names[bridge]} / {names[peer]}: {label} ({(higher ? "higher" : "lower")} is better for Bridge)", b / p, "×");
                    }
                }
            }
        }

        // The issue's targets, for Bridge JSON: met or missed, and by how much.
        Target(r, "fan-out ≥ 3× SignalR + Redis", Ratio(values, "bridge-json", "signalr", "burst_delivered_per_s"), 3, true);
        Target(r, "fan-out ≥ 0.8× raw NATS WebSocket", Ratio(values, "bridge-json", "nats", "burst_delivered_per_s"), 0.8, true);
        if (Ratio(values, "bridge-json", "nats", "burst_delivered_per_s") is { } fanout)
        {
            r.Goal(Goals.Fanout, fanout);
        }

        Target(r, "p99 at half the peak rate < 10 ms", Median(values, "bridge-json", "half_peak_p99_ms"), 10, false);
        Target(r, "≤ 10 KB worker memory per idle WebSocket", Median(values, "bridge-json", "kb_per_connection"), 10, false);
        Target(r, $"{rooms:N0} rooms ≥ 0.9× one room's delivered/s", Median(values, "bridge-json", "delivered_per_s") / Median(values, "bridge-json", "burst_delivered_per_s"), 0.9, true);
        return r;
    }

    private static void Target(Report r, string name, double? measured, double limit, bool atLeast)
    {
        if (measured is not { } m || double.IsNaN(m))
        {
            r.Add("target: " + name, "not measured");
            return;
        }

        var met = atLeast ? m >= limit : m <= limit;
        r.Add("target: " + name, string.Create(CultureInfo.InvariantCulture, $"{(met ? "met" : "MISSED")}: {m:N2} ({(m / limit - 1) * 100:+0;-0}% vs {limit:N2})"));
    }

    private static double? Ratio(Dictionary<(string, string), List<double>> values, string a, string b, string metric) =>
        Median(values, a, metric) is { } x && Median(values, b, metric) is { } y && y > 0 ? x / y : null;

    private static double? Median(Dictionary<(string, string), List<double>> values, string target, string metric) =>
        values.TryGetValue((target, metric), out var list) ? GoalTable.Median(list) : null;

    private static string Cell(Dictionary<(string, string), List<double>> values, string target, string metric) =>
        Median(values, target, metric) is { } m
            ? Report.Format(m) + (values[(target, metric)].Count > 1 ? " [" + string.Join(", ", values[(target, metric)].Select(Report.Format)) + "]" : "")
            : "-";
}

/// <summary>
/// One target, one room, the same subscribers throughout: latency at a fixed rate; rate steps up to the p99
/// bound; a saturating burst; then latency at half the burst's delivered rate.
/// </summary>
internal sealed class PeerFanoutScenario(ScenarioSpec spec, Func<IFanoutTarget> target, int rate, double bound, int burst) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var t = target();
        await t.StartAsync(ctx);
        var subscribers = await ctx.ConnectAsync((_, ct) => t.SubscribeAsync([0], ctx.Stats, ct));
        try
        {
            ctx.Metric("subscribers", $"{t.Name}: subscribers", subscribers.Count);
            await using var publisher = await t.CreatePublisherAsync(ctx.Stats, ctx.Token);
            long n = 0;
            Task<PhaseResult> Phase(LoadSimulation load) => ctx.InjectAsync(
                (_, ts) => publisher.PublishAsync(0, LoadPayload.Create(ts, n++, 0), ctx.Token),
                subscribers.Count,
                () => publisher.FlushAsync(ctx.Token),
                load);

            ctx.Status = $"fixed rate {rate} msg/s";
            var fixedRate = await Phase(new LoadSimulation.InjectAtRate(rate));
            ctx.Metric("rate_p50_ms", $"p50 at {rate} msg/s", fixedRate.P50Ms, "ms");
            ctx.Metric("rate_p99_ms", $"p99 at {rate} msg/s", fixedRate.P99Ms, "ms");

            // Steps go on past a step over the p99 bound (on a shared machine one noisy step must not end the
            // search); they stop when the target no longer keeps up (under 90% delivered, or loss) or after two
            // steps over the bound in a row. The result is the best delivered/s among steps within the bound.
            double best = 0;
            var overInARow = 0;
            foreach (var step in Steps())
            {
                ctx.Status = $"rate step {step} msg/s";
                var s = await Phase(new LoadSimulation.InjectAtRate(step));
                var offered = (double)step * subscribers.Count;
                var keepsUp = s.Lost == 0 && s.DeliveredPerSecond >= 0.9 * offered;
                var within = keepsUp && s.P99Ms <= bound;
                ctx.Report.Add($"step {step} msg/s ({offered:N0} deliveries/s offered)",
                    string.Create(CultureInfo.InvariantCulture, $"{s.DeliveredPerSecond:N0}/s delivered, p99 {s.P99Ms:N1} ms, lost {s.Lost:N0}: {(within ? "within" : keepsUp ? "over" : "saturated, beyond")} the bound"));
                if (within)
                {
                    best = Math.Max(best, s.DeliveredPerSecond);
                    overInARow = 0;
                }
                else if (!keepsUp || ++overInARow == 2)
                {
                    break;
                }
            }

            ctx.Metric("bound_delivered_per_s", $"highest delivered/s with p99 ≤ {bound:N0} ms", best, "msg/s");

            ctx.Status = $"burst of {burst}";
            var b = await Phase(new LoadSimulation.Burst(burst));
            ctx.Metric("burst_delivered_per_s", "burst: delivered/s (saturated)", b.DeliveredPerSecond, "msg/s");
            ctx.Metric("burst_lost", "burst: lost", b.Lost);

            var half = Math.Max(1, (int)(b.DeliveredPerSecond / 2 / Math.Max(1, subscribers.Count)));
            ctx.Status = $"half the peak: {half} msg/s";
            var h = await Phase(new LoadSimulation.InjectAtRate(half));
            ctx.Metric("half_peak_rate", "half the peak: msg/s published", half, "msg/s");
            ctx.Metric("half_peak_p99_ms", "half the peak: p99", h.P99Ms, "ms");
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(subscribers.Select(s => s.DisposeAsync().AsTask()));
        }
    }

    // Doubling from a rate a busy two-core machine sustains for every peer, up to past the fastest one's saturation.
    private static int[] Steps() => [25, 50, 100, 200, 400, 800, 1600];
}
