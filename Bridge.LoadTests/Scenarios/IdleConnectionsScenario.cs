using System.Globalization;
using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using Bridge.Testing;

namespace Bridge.LoadTests.Scenarios;

/// <summary>What each idle Bridge connection joins right after connecting.</summary>
internal enum IdleJoin
{
    /// <summary>Nothing: the connection only holds its socket and session.</summary>
    None,

    /// <summary>One room shared by every connection: adds the membership, not a room per connection.</summary>
    Shared,
}

/// <summary>
/// Idle connections: opens N WebSockets that do nothing (the same client for every target), then reports the
/// gateway process's resident memory per connection (RSS after − RSS before, over the connections still open).
/// N is capped below this process's open-file limit; the report says so when it is.
/// With <c>profile</c>, the worker is also measured from inside (dotnet-gcdump and dotnet-counters, before and
/// after): managed bytes per connection by type, GC-committed memory, and the rest of RSS (native).
/// With a <c>baseline</c> (another build's worker), the same measurement runs on it first, with its own nats-server,
/// in the same run, and the ratio is reported (metrics of the baseline pass are prefixed <c>baseline_</c>; with
/// <c>profile</c> it is profiled too, its rows by type in results/baseline_idle-per-connection.txt).
/// </summary>
internal sealed class IdleConnectionsScenario(
    ScenarioSpec spec, Func<IFanoutTarget> target, IdleJoin join = IdleJoin.None, bool profile = false, TimeSpan hold = default,
    Func<IFanoutTarget>? baseline = null) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        if (baseline is null)
        {
            await MeasureAsync(ctx, target, "", profile, hold);
            return;
        }

        ctx.Phase = "baseline";
        var before = await MeasureAsync(ctx, baseline, "baseline_", profile, hold: TimeSpan.Zero);
        ctx.Phase = "this build";
        var after = await MeasureAsync(ctx, target, "", profile, hold);
        ctx.Metric("kb_per_connection_vs_baseline", "memory per idle connection: this build ÷ the baseline worker", after / before, "×");
    }

    /// <summary>One target's pass; returns its memory per idle connection in KB (NaN when none stayed open).</summary>
    private async Task<double> MeasureAsync(ScenarioContext ctx, Func<IFanoutTarget> target, string prefix, bool profile, TimeSpan hold)
    {
        await using var t = target();
        await t.StartAsync(ctx);
        var requested = spec.Find<LoadSimulation.KeepConstant>()!.Connections;
        var limit = SourceAddresses.FileDescriptorLimit();
        var count = Math.Min(requested, limit - 1_500);
        if (count < requested)
        {
            ctx.Report.Add("connections capped", $"{count:N0} of {requested:N0}: the open-file limit is {limit:N0} (make raises ulimit -n to the hard limit)");
        }

        var endpoint = t.IdleEndpoint;
        if (join == IdleJoin.Shared)
        {
            // Bridge's JSON subprotocol: every connection joins the same room right after connecting.
            endpoint = endpoint with { Hello = """{"type":"room.join","room":"bench.idle","id":"j"}"""u8.ToArray(), HelloIsText = true };
            ctx.Report.Add("each connection", "joins room bench.idle (one room for all)");
        }

        var gateway = ctx.Processes.Processes.First(p => p.Name == t.GatewayProcess);
        var dumps = Report.Directory;
        Directory.CreateDirectory(dumps);
        (long Total, IReadOnlyDictionary<string, (long Bytes, long Count)> Types)? typesBefore = null;
        IReadOnlyDictionary<string, double>? countersBefore = null;
        if (profile)
        {
            // Warm the worker's code paths first (one connection), so the JIT's and first-use allocations are in
            // the baseline, not in the per-connection figure.
            var warm = await IdleSocket.ConnectAsync(endpoint, ctx.Token);
            await Task.Delay(TimeSpan.FromSeconds(1), ctx.Token);
            await warm.DisposeAsync();
            ctx.Status = "profiling the worker before";
            typesBefore = DotnetTools.GcDump(gateway.Pid, Path.Combine(dumps, prefix + "idle-before.gcdump"));
            countersBefore = DotnetTools.RuntimeCounters(gateway.Pid, Path.Combine(dumps, prefix + "idle-before-counters.csv"));
        }

        await Task.Delay(TimeSpan.FromSeconds(1), ctx.Token);
        gateway.Sample();
        var before = gateway.RssBytes;
        ctx.BeginMeasure();
        var started = System.Diagnostics.Stopwatch.StartNew();
        var sockets = await ctx.ConnectAsync((_, ct) => IdleSocket.ConnectAsync(endpoint, ct), count);
        var connectTime = started.Elapsed;
        try
        {
            ctx.Status = "settling";
            await Task.Delay(spec.Duration, ctx.Token);
            gateway.Sample();
            var after = gateway.RssBytes;
            var open = sockets.Count(s => s.IsOpen);
            ctx.EndMeasure();
            ctx.Metric(prefix + "idle_connections", $"{t.Name}: idle connections open", open);
            ctx.Metric(prefix + "connects_per_s", $"{t.Name}: connects/s while opening them", sockets.Count / connectTime.TotalSeconds, "/s");
            ctx.Metric(prefix + "gateway_rss_before_mb", $"{t.GatewayProcess} RSS before", before / 1048576.0, "MB");
            ctx.Metric(prefix + "gateway_rss_after_mb", $"{t.GatewayProcess} RSS with the connections open", after / 1048576.0, "MB");
            var kb = open > 0 ? (after - before) / 1024.0 / open : double.NaN;
            ctx.Metric(prefix + "kb_per_connection", $"{t.GatewayProcess} memory per idle connection", kb, "KB");
            if (profile && open > 0)
            {
                ctx.Status = "profiling the worker after";
                // Counters first: the gcdump forces a full GC, which would shrink what they report.
                var countersAfter = DotnetTools.RuntimeCounters(gateway.Pid, Path.Combine(dumps, prefix + "idle-after-counters.csv"));
                var typesAfter = DotnetTools.GcDump(gateway.Pid, Path.Combine(dumps, prefix + "idle-after.gcdump"));
                MemoryAttribution.Attribute(ctx, "connection", typesBefore!.Value, typesAfter, countersBefore!, countersAfter, after - before, open, prefix);
            }

            ctx.Metric(prefix + "closed_while_idle", $"{t.Name}: connections closed by the server while idle", sockets.Count - sockets.Count(s => s.IsOpen));
            if (hold > TimeSpan.Zero)
            {
                ctx.Status = $"holding {open:N0} connections for {hold.TotalSeconds:N0} s (worker pid {gateway.Pid})";
                Console.Error.WriteLine($"idle: worker pid {gateway.Pid}, {open:N0} connections held for {hold.TotalSeconds:N0} s");
                await Task.Delay(hold, ctx.Token);
            }

            return kb;
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(sockets.Select(s => s.DisposeAsync().AsTask()));
        }
    }
}
