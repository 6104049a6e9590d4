using System.Reflection;
using System.Text.RegularExpressions;
using Bridge.Testing;
using Bridge.Worker.Hosting;
using Microsoft.Extensions.Logging;

namespace Bridge.Tests.Unit;

/// <summary>
/// The worker's log event ids are stable names operators search and alert on: each is used by one log only, and
/// all are listed in one place (docs/operations.md, "Event ids") with their level.
/// </summary>
public sealed partial class LogEventIdTests
{
    [Fact]
    public void Every_log_of_the_worker_has_an_event_id_of_its_own()
    {
        var shared = WorkerLogs()
            .GroupBy(l => l.Id)
            .Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(l => l.Where))}")
            .ToList();

        Assert.True(shared.Count == 0, "event ids used by more than one log:\n" + string.Join('\n', shared));
    }

    [Fact]
    public void The_event_id_table_in_operations_md_lists_every_log_with_its_level_and_nothing_else()
    {
        var documented = DocumentedLogs();
        var logs = WorkerLogs().DistinctBy(l => l.Id).ToDictionary(l => l.Id);

        var missing = logs.Values.Where(l => !documented.ContainsKey(l.Id)).Select(l => $"{l.Id} ({l.Where})");
        var stale = documented.Keys.Where(id => !logs.ContainsKey(id)).Select(id => id.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var wrongLevel = logs.Values
            .Where(l => documented.TryGetValue(l.Id, out var level) && level != l.Level.ToString())
            .Select(l => $"{l.Id}: logged at {l.Level}, documented as {documented[l.Id]}");

        Assert.Empty(missing);
        Assert.Empty(stale);
        Assert.Empty(wrongLevel);
    }

    private sealed record WorkerLog(int Id, LogLevel Level, string Where);

    /// <summary>Every <c>[LoggerMessage]</c> method of the worker assembly (the attribute stays on the declaration).</summary>
    private static List<WorkerLog> WorkerLogs()
    {
        const BindingFlags all = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;
        var logs = typeof(BridgeApp).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(all))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(x => x.Attribute is not null)
            .Select(x => new WorkerLog(x.Attribute!.EventId, x.Attribute.Level, $"{x.Method.DeclaringType!.Name}.{x.Method.Name}"))
            .ToList();
        Assert.True(logs.Count > 40, $"found only {logs.Count} [LoggerMessage] methods in the worker");
        return logs;
    }

    /// <summary>The rows of the "Event ids" table: id to level.</summary>
    private static Dictionary<int, string> DocumentedLogs()
    {
        var text = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "operations.md"));
        var section = text[text.IndexOf("### Event ids", StringComparison.Ordinal)..];
        var rows = new Dictionary<int, string>();
        foreach (Match row in Row().Matches(section))
        {
            var id = int.Parse(row.Groups["id"].Value, System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(rows.TryAdd(id, row.Groups["level"].Value), $"event id {id} is listed twice in docs/operations.md");
        }

        return rows;
    }

    [GeneratedRegex(@"^\| (?<id>\d{4}) \| (?<level>\w+) \|", RegexOptions.Multiline)]
    private static partial Regex Row();
}
