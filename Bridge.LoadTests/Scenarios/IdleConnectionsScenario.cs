using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Idle connections: opens N WebSockets that do nothing (the same client for every target), then reports the
/// gateway process's resident memory per connection (RSS after − RSS before, over the connections still open).
/// N is capped below this process's open-file limit; the report says so when it is.
/// </summary>
internal sealed class IdleConnectionsScenario(ScenarioSpec spec, Func<IFanoutTarget> target) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
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

        var gateway = ctx.Processes.Processes.First(p => p.Name == t.GatewayProcess);
        await Task.Delay(TimeSpan.FromSeconds(1), ctx.Token);
        gateway.Sample();
        var before = gateway.RssBytes;
        ctx.BeginMeasure();
        var started = System.Diagnostics.Stopwatch.StartNew();
        var sockets = await ctx.ConnectAsync((_, ct) => IdleSocket.ConnectAsync(t.IdleEndpoint, ct), count);
        var connectTime = started.Elapsed;
        try
        {
            ctx.Status = "settling";
            await Task.Delay(spec.Duration, ctx.Token);
            gateway.Sample();
            var after = gateway.RssBytes;
            var open = sockets.Count(s => s.IsOpen);
            ctx.EndMeasure();
            ctx.Metric("idle_connections", $"{t.Name}: idle connections open", open);
            ctx.Metric("connects_per_s", "connects/s while opening them", sockets.Count / connectTime.TotalSeconds, "/s");
            ctx.Metric("gateway_rss_before_mb", $"{t.GatewayProcess} RSS before", before / 1048576.0, "MB");
            ctx.Metric("gateway_rss_after_mb", $"{t.GatewayProcess} RSS with the connections open", after / 1048576.0, "MB");
            ctx.Metric("kb_per_connection", $"{t.GatewayProcess} memory per idle connection", open > 0 ? (after - before) / 1024.0 / open : double.NaN, "KB");
            ctx.Metric("closed_while_idle", "connections closed by the server while idle", sockets.Count - open);
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(sockets.Select(s => s.DisposeAsync().AsTask()));
        }
    }
}
