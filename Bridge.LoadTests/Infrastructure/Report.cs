using System.Globalization;
using System.Text;
using Bridge.Testing;
using HdrHistogram;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>A scenario's results: rows of metrics plus thresholds; written to the console and to results/.</summary>
internal sealed class Report(string scenario, string command)
{
    private readonly List<(string Metric, string Value)> _rows = [];
    private readonly List<(string Check, bool Passed, string Detail)> _checks = [];

    public bool Passed => _checks.All(c => c.Passed);

    public void Add(string metric, string value) => _rows.Add((metric, value));

    public void Add(string metric, double value, string unit) =>
        _rows.Add((metric, value.ToString(value >= 100 ? "N0" : "N2", CultureInfo.InvariantCulture) + (unit.Length > 0 ? " " + unit : "")));

    public void AddLatency(string prefix, HistogramBase histogram)
    {
        if (histogram.TotalCount == 0)
        {
            Add(prefix + " latency", "no samples");
            return;
        }

        foreach (var p in new[] { 50.0, 90.0, 99.0, 99.9 })
        {
            Add($"{prefix} latency p{p.ToString(CultureInfo.InvariantCulture)}", histogram.GetValueAtPercentile(p) / 1000.0, "ms");
        }

        Add($"{prefix} latency max", histogram.GetMaxValue() / 1000.0, "ms");
    }

    public void Check(string check, bool passed, string detail) => _checks.Add((check, passed, detail));

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"## {scenario}");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`  ");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC");
        sb.AppendLine();
        sb.AppendLine("| metric | value |");
        sb.AppendLine("|---|---|");
        foreach (var (metric, value) in _rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {metric} | {value} |");
        }

        if (_checks.Count > 0)
        {
            sb.AppendLine();
            sb.AppendLine("| threshold | result | measured |");
            sb.AppendLine("|---|---|---|");
            foreach (var (check, passed, detail) in _checks)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"| {check} | {(passed ? "pass" : "**FAIL**")} | {detail} |");
            }
        }

        return sb.ToString();
    }

    public void Write()
    {
        var markdown = ToMarkdown();
        Console.WriteLine(markdown);
        var dir = Path.Combine(RepoPaths.Root, "results");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, $"{scenario}.md"), markdown);
    }
}
