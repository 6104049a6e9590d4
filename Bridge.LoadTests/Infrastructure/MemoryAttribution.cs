using System.Globalization;
using System.Text;
using Bridge.LoadTests.Harness;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>Where a worker's memory went between two profiles (gcdump and dotnet-counters, <see cref="DotnetTools"/>): by owner, then by type.</summary>
internal static class MemoryAttribution
{
    /// <summary>
    /// Splits the RSS growth per <paramref name="unit"/> (a connection, a room) over <paramref name="open"/> of them into
    /// managed (GC committed; live bytes by type, grouped by owner) and the rest; the rows by type go to
    /// results/&lt;scenario&gt;-per-&lt;unit&gt;.txt. A <paramref name="prefix"/> (a baseline pass's <c>baseline_</c>) goes before
    /// every metric's name and the file's name, so two passes of one run keep both.
    /// </summary>
    public static void Attribute(
        ScenarioContext ctx,
        string unit,
        (long Total, IReadOnlyDictionary<string, (long Bytes, long Count)> Types) heapBefore,
        (long Total, IReadOnlyDictionary<string, (long Bytes, long Count)> Types) heapAfter,
        IReadOnlyDictionary<string, double> countersBefore,
        IReadOnlyDictionary<string, double> countersAfter,
        long rssGrowth,
        int open,
        string prefix = "")
    {
        double Counter(IReadOnlyDictionary<string, double> c, string key) =>
            c.FirstOrDefault(kv => kv.Key.StartsWith(key, StringComparison.Ordinal)) is { Key: not null } kv ? kv.Value : double.NaN;
        var committedGrowth = Counter(countersAfter, "dotnet.gc.last_collection.memory.committed_size") - Counter(countersBefore, "dotnet.gc.last_collection.memory.committed_size");
        var (before, after) = (heapBefore.Types, heapAfter.Types);
        var rows = after
            .Select(kv => (Type: kv.Key, Bytes: kv.Value.Bytes - (before.TryGetValue(kv.Key, out var b) ? b.Bytes : 0), Count: kv.Value.Count - (before.TryGetValue(kv.Key, out var c) ? c.Count : 0)))
            .Where(r => r.Bytes > 0)
            .OrderByDescending(r => r.Bytes)
            .ToList();
        var liveGrowth = heapAfter.Total - heapBefore.Total;
        var byType = after.Values.Sum(v => v.Bytes) - before.Values.Sum(v => v.Bytes);
        ctx.Metric($"{prefix}managed_live_b_per_{unit}", $"managed live objects per {unit} (gcdump after − before)", (double)liveGrowth / open, "B");
        foreach (var group in rows.GroupBy(r => Owner(r.Type)).OrderByDescending(g => g.Sum(r => r.Bytes)))
        {
            ctx.Report.Add(prefix + "  of which " + group.Key, $"{(double)group.Sum(r => r.Bytes) / open:N0} B per {unit}");
        }

        ctx.Report.Add(prefix + "  of which not split by type (string and array sizes the report gives per type)", $"{(double)(liveGrowth - byType) / open:N0} B per {unit}");

        ctx.Metric($"{prefix}gc_committed_b_per_{unit}", $"GC committed memory per {unit} (dotnet-counters)", committedGrowth / open, "B");
        ctx.Metric($"{prefix}native_b_per_{unit}", $"rest of RSS per {unit} (RSS growth − GC committed growth)", (rssGrowth - committedGrowth) / open, "B");
        foreach (var name in new[] { "dotnet.thread_pool.thread.count", "dotnet.timer.count" })
        {
            ctx.Report.Add(prefix + name, $"{Counter(countersBefore, name):N0} before, {Counter(countersAfter, name):N0} after");
        }

        var text = new StringBuilder();
        text.AppendLine(CultureInfo.InvariantCulture, $"managed live bytes per {unit} by type ({open:N0} of them; gcdump after - before)");
        foreach (var r in rows.Where(r => r.Bytes >= open))
        {
            text.AppendLine(CultureInfo.InvariantCulture, $"{(double)r.Bytes / open,10:N1} B  {(double)r.Count / open,6:N2} objects  [{Owner(r.Type)}]  {r.Type}");
        }

        File.WriteAllText(Path.Combine(Report.Directory, $"{prefix}{ctx.Spec.Name}-per-{unit}.txt"), text.ToString());
        foreach (var r in rows.Take(12))
        {
            ctx.Report.Add(prefix + "  " + r.Type, $"{(double)r.Bytes / open:N0} B, {(double)r.Count / open:N2} objects per {unit}");
        }
    }

    /// <summary>
    /// Who a type's instances belong to, by name: NATS.Net (a subscription's types and the generic ones over them), Bridge's own code (its types, and generic types or async state
    /// machines over them, its channel), ASP.NET Core (Kestrel, HTTP context, pipes), the WebSocket, the socket;
    /// what is left (strings, tasks, locks, token sources, timers) is shared runtime types that any of them allocate.
    /// </summary>
    private static string Owner(string type) => type switch
    {
        // First: NATS.Net's own types and the generic ones over them (a subscription's channel and its reader).
        _ when type.Contains("NATS.", StringComparison.Ordinal) => "NATS.Net (subscriptions, their channels and readers)",
        _ when type.Contains("Bridge.", StringComparison.Ordinal) || type.Contains("System.Threading.Channels", StringComparison.Ordinal) => "Bridge (session, queue, rooms, loops)",
        _ when type.Contains("WebSocket", StringComparison.Ordinal) || type.StartsWith("KeepAlivePingState", StringComparison.Ordinal) || type.StartsWith("Utf8MessageState", StringComparison.Ordinal) => "WebSocket (ManagedWebSocket, keep-alive)",
        _ when type.Contains("Microsoft.AspNetCore", StringComparison.Ordinal) || type.Contains("Pipelines", StringComparison.Ordinal) || type.Contains("StringValues", StringComparison.Ordinal)
            || type.Contains("Microsoft.Extensions", StringComparison.Ordinal) || type.StartsWith("Context", StringComparison.Ordinal) || type.Contains("Activity", StringComparison.Ordinal) => "ASP.NET Core (Kestrel connection, HTTP context, headers, pipes)",
        _ when type.Contains("System.Net.Sockets", StringComparison.Ordinal) || type.StartsWith("BufferMemoryReceiveOperation", StringComparison.Ordinal) || type.Contains("System.Net.IP", StringComparison.Ordinal) => "socket",
        _ => "runtime types any of them allocate (strings, tasks, locks, token sources, timers, execution contexts)",
    };
}
