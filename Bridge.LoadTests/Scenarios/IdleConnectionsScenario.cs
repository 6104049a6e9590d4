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
/// </summary>
internal sealed class IdleConnectionsScenario(ScenarioSpec spec, Func<IFanoutTarget> target, IdleJoin join = IdleJoin.None, bool profile = false, TimeSpan hold = default) : IScenario
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
            typesBefore = DotnetTools.GcDump(gateway.Pid, Path.Combine(dumps, "idle-before.gcdump"));
            countersBefore = DotnetTools.RuntimeCounters(gateway.Pid, Path.Combine(dumps, "idle-before-counters.csv"));
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
            ctx.Metric("idle_connections", $"{t.Name}: idle connections open", open);
            ctx.Metric("connects_per_s", "connects/s while opening them", sockets.Count / connectTime.TotalSeconds, "/s");
            ctx.Metric("gateway_rss_before_mb", $"{t.GatewayProcess} RSS before", before / 1048576.0, "MB");
            ctx.Metric("gateway_rss_after_mb", $"{t.GatewayProcess} RSS with the connections open", after / 1048576.0, "MB");
            ctx.Metric("kb_per_connection", $"{t.GatewayProcess} memory per idle connection", open > 0 ? (after - before) / 1024.0 / open : double.NaN, "KB");
            if (profile && open > 0)
            {
                ctx.Status = "profiling the worker after";
                // Counters first: the gcdump forces a full GC, which would shrink what they report.
                var countersAfter = DotnetTools.RuntimeCounters(gateway.Pid, Path.Combine(dumps, "idle-after-counters.csv"));
                var typesAfter = DotnetTools.GcDump(gateway.Pid, Path.Combine(dumps, "idle-after.gcdump"));
                Attribute(ctx, typesBefore!.Value, typesAfter, countersBefore!, countersAfter, after - before, open);
            }

            ctx.Metric("closed_while_idle", "connections closed by the server while idle", sockets.Count - sockets.Count(s => s.IsOpen));
            if (hold > TimeSpan.Zero)
            {
                ctx.Status = $"holding {open:N0} connections for {hold.TotalSeconds:N0} s (worker pid {gateway.Pid})";
                Console.Error.WriteLine($"idle: worker pid {gateway.Pid}, {open:N0} connections held for {hold.TotalSeconds:N0} s");
                await Task.Delay(hold, ctx.Token);
            }
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(sockets.Select(s => s.DisposeAsync().AsTask()));
        }
    }

    /// <summary>Splits the RSS growth per connection into managed (GC committed; live bytes by type) and the rest.</summary>
    private static void Attribute(
        ScenarioContext ctx,
        (long Total, IReadOnlyDictionary<string, (long Bytes, long Count)> Types) heapBefore,
        (long Total, IReadOnlyDictionary<string, (long Bytes, long Count)> Types) heapAfter,
        IReadOnlyDictionary<string, double> countersBefore,
        IReadOnlyDictionary<string, double> countersAfter,
        long rssGrowth,
        int open)
    {
        double Counter(IReadOnlyDictionary<string, double> c, string prefix) =>
            c.FirstOrDefault(kv => kv.Key.StartsWith(prefix, StringComparison.Ordinal)) is { Key: not null } kv ? kv.Value : double.NaN;
        var committedGrowth = Counter(countersAfter, "dotnet.gc.last_collection.memory.committed_size") - Counter(countersBefore, "dotnet.gc.last_collection.memory.committed_size");
        var (before, after) = (heapBefore.Types, heapAfter.Types);
        var rows = after
            .Select(kv => (Type: kv.Key, Bytes: kv.Value.Bytes - (before.TryGetValue(kv.Key, out var b) ? b.Bytes : 0), Count: kv.Value.Count - (before.TryGetValue(kv.Key, out var c) ? c.Count : 0)))
            .Where(r => r.Bytes > 0)
            .OrderByDescending(r => r.Bytes)
            .ToList();
        var liveGrowth = heapAfter.Total - heapBefore.Total;
        var byType = after.Values.Sum(v => v.Bytes) - before.Values.Sum(v => v.Bytes);
        ctx.Metric("managed_live_b_per_connection", "managed live objects per connection (gcdump after − before)", (double)liveGrowth / open, "B");
        foreach (var group in rows.GroupBy(r => Owner(r.Type)).OrderByDescending(g => g.Sum(r => r.Bytes)))
        {
            ctx.Report.Add("  of which " + group.Key, $"{(double)group.Sum(r => r.Bytes) / open:N0} B per connection");
        }

        ctx.Report.Add("  of which not split by type (string and array sizes the report gives per type)", $"{(double)(liveGrowth - byType) / open:N0} B per connection");

        ctx.Metric("gc_committed_b_per_connection", "GC committed memory per connection (dotnet-counters)", committedGrowth / open, "B");
        ctx.Metric("native_b_per_connection", "rest of RSS per connection (RSS growth − GC committed growth)", (rssGrowth - committedGrowth) / open, "B");
        foreach (var name in new[] { "dotnet.thread_pool.thread.count", "dotnet.timer.count" })
        {
            ctx.Report.Add(name, $"{Counter(countersBefore, name):N0} before, {Counter(countersAfter, name):N0} after");
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"managed live bytes per connection by type ({open:N0} connections; gcdump after - before)");
        foreach (var r in rows.Where(r => r.Bytes >= open))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{(double)r.Bytes / open,10:N1} B  {(double)r.Count / open,6:N2} objects  [{Owner(r.Type)}]  {r.Type}");
        }

        File.WriteAllText(Path.Combine(Report.Directory, "idle-per-connection.txt"), text.ToString());
        foreach (var r in rows.Take(12))
        {
            ctx.Report.Add("  " + r.Type, $"{(double)r.Bytes / open:N0} B, {(double)r.Count / open:N2} objects per connection");
        }
    }

    /// <summary>
    /// Who a type's instances belong to, by name: Bridge's own code (its types, and generic types or async state
    /// machines over them, its channel), ASP.NET Core (Kestrel, HTTP context, pipes), the WebSocket, the socket;
    /// what is left (strings, tasks, locks, token sources, timers) is shared runtime types that any of them allocate.
    /// </summary>
    private static string Owner(string type) => type switch
    {
        _ when type.Contains("Bridge.", StringComparison.Ordinal) || type.Contains("System.Threading.Channels", StringComparison.Ordinal) => "Bridge (session, queue, room map, loops)",
        _ when type.Contains("WebSocket", StringComparison.Ordinal) || type.StartsWith("KeepAlivePingState", StringComparison.Ordinal) || type.StartsWith("Utf8MessageState", StringComparison.Ordinal) => "WebSocket (ManagedWebSocket, keep-alive)",
        _ when type.Contains("Microsoft.AspNetCore", StringComparison.Ordinal) || type.Contains("Pipelines", StringComparison.Ordinal) || type.Contains("StringValues", StringComparison.Ordinal)
            || type.Contains("Microsoft.Extensions", StringComparison.Ordinal) || type.StartsWith("Context", StringComparison.Ordinal) || type.Contains("Activity", StringComparison.Ordinal) => "ASP.NET Core (Kestrel connection, HTTP context, headers, pipes)",
        _ when type.Contains("System.Net.Sockets", StringComparison.Ordinal) || type.StartsWith("BufferMemoryReceiveOperation", StringComparison.Ordinal) || type.Contains("System.Net.IP", StringComparison.Ordinal) => "socket",
        _ => "runtime types any of them allocate (strings, tasks, locks, token sources, timers, execution contexts)",
    };
}
