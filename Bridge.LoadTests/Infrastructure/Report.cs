using System.Globalization;
using System.Net;
using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.Testing;
using HdrHistogram;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// A scenario's results: rows of metrics plus thresholds; written to the console and to results/ as Markdown,
/// HTML and CSV. Rows added with a number keep it for the CSV and, with a key, for thresholds.
/// </summary>
internal sealed class Report(string scenario, string command)
{
    private readonly List<Row> _rows = [];
    private readonly List<(string Check, bool Passed, string Detail)> _checks = [];
    private readonly Dictionary<string, double> _metrics = new(StringComparer.Ordinal);
    private readonly List<(Goal Goal, double Measured, string? Basis)> _goals = [];

    /// <summary>Where reports are written: <c>--report-dir</c>, else results/ of the checkout, else ./results.</summary>
    public static string Directory { get; set; } = RepoPaths.InCheckout ? Path.Combine(RepoPaths.Root, "results") : Path.GetFullPath("results");

    public string Scenario => scenario;

    /// <summary>How long the scenario ran, setup to teardown (the JUnit report's time).</summary>
    public TimeSpan Elapsed { get; set; }

    public string Command => command;

    public bool Passed => _checks.All(c => c.Passed);

    public IReadOnlyDictionary<string, double> Metrics => _metrics;

    public IReadOnlyList<(string Check, bool Passed, string Detail)> Checks => _checks;

    /// <summary>Goals this scenario measured (<see cref="GoalTable"/> gathers them).</summary>
    public IReadOnlyList<(Goal Goal, double Measured, string? Basis)> Goals => _goals;

    public void Add(string metric, string value) => _rows.Add(new Row(metric, value, null, ""));

    public void Add(string metric, double value, string unit) => _rows.Add(new Row(metric, Format(value) + (unit.Length > 0 ? " " + unit : ""), value, unit));

    /// <summary>A row that thresholds can refer to by <paramref name="key"/>.</summary>
    public void Metric(string key, string label, double value, string unit = "")
    {
        _metrics[key] = value;
        Add(label, value, unit);
    }

    /// <summary>A goal's measured value; <paramref name="basis"/>: how it was read from several samples ("median of 5 rounds").</summary>
    public void Goal(Goal goal, double measured, string? basis = null)
    {
        _goals.Add((goal, measured, basis));
        _metrics["goal_" + goal.Key] = measured;
        Add("goal: " + goal.Name + (basis is null ? "" : $" ({basis})"), $"{Format(measured)}{(goal.Unit == "×" ? "×" : " " + goal.Unit)} (goal {goal.Describe()}: {(goal.IsMet(measured) ? "met" : "MISSED")})");
    }

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

    public static string Format(double value) =>
        value.ToString(Math.Abs(value) >= 100 || value == Math.Floor(value) ? "N0" : "N2", CultureInfo.InvariantCulture);

    public static string MachineLine() =>
        $"{Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC";

    /// <summary>A Markdown section's heading: title, the command that made it, the machine.</summary>
    public static void AppendHeading(StringBuilder sb, string title, string command)
    {
        sb.AppendLine(CultureInfo.InvariantCulture, $"## {title}");
        sb.AppendLine();
        sb.AppendLine(CultureInfo.InvariantCulture, $"Command: `{command}`  ");
        sb.AppendLine(CultureInfo.InvariantCulture, $"Machine: {MachineLine()}");
        sb.AppendLine();
    }

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        AppendHeading(sb, scenario, command);
        sb.AppendLine("| metric | value |");
        sb.AppendLine("|---|---|");
        foreach (var row in _rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"| {row.Metric} | {row.Text} |");
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

    public string ToHtmlSection()
    {
        static string E(string s) => WebUtility.HtmlEncode(s);
        var sb = new StringBuilder();
        sb.AppendLine(CultureInfo.InvariantCulture, $"<section><h2>{E(scenario)} <span class=\"{(Passed ? "pass" : "fail")}\">{(Passed ? "pass" : "FAIL")}</span></h2>");
        sb.AppendLine(CultureInfo.InvariantCulture, $"<p><code>{E(command)}</code><br>{E(MachineLine())}</p>");
        sb.AppendLine("<table><tr><th>metric</th><th>value</th></tr>");
        foreach (var row in _rows)
        {
            sb.AppendLine(CultureInfo.InvariantCulture, $"<tr><td>{E(row.Metric)}</td><td>{E(row.Text)}</td></tr>");
        }

        sb.AppendLine("</table>");
        if (_checks.Count > 0)
        {
            sb.AppendLine("<table><tr><th>threshold</th><th>result</th><th>measured</th></tr>");
            foreach (var (check, passed, detail) in _checks)
            {
                sb.AppendLine(CultureInfo.InvariantCulture, $"<tr><td>{E(check)}</td><td class=\"{(passed ? "pass" : "fail")}\">{(passed ? "pass" : "FAIL")}</td><td>{E(detail)}</td></tr>");
            }

            sb.AppendLine("</table>");
        }

        sb.AppendLine("</section>");
        return sb.ToString();
    }

    /// <summary>CSV rows: scenario, kind (metric or threshold), name, value, unit or result.</summary>
    public IEnumerable<string> ToCsvRows()
    {
        static string Q(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
        foreach (var row in _rows)
        {
            var value = row.Value is { } v ? v.ToString("R", CultureInfo.InvariantCulture) : row.Text;
            yield return string.Join(',', Q(scenario), "metric", Q(row.Metric), Q(value), Q(row.Unit));
        }

        foreach (var (check, passed, detail) in _checks)
        {
            yield return string.Join(',', Q(scenario), "threshold", Q(check), Q(detail), passed ? "pass" : "FAIL");
        }
    }

    /// <summary>Prints the Markdown and writes results/&lt;scenario&gt;.md, .html, .csv and .junit.xml.</summary>
    public void Write()
    {
        Console.WriteLine(ToMarkdown());
        WriteFiles(scenario, [this]);
    }

    public const string CsvHeader = "scenario,kind,name,value,unit_or_result";

    public static void WriteFiles(string name, IReadOnlyList<Report> reports)
    {
        var dir = Directory;
        System.IO.Directory.CreateDirectory(dir);
        JUnitReport.Write(Path.Combine(dir, $"{name}.junit.xml"), name, reports);
        File.WriteAllText(Path.Combine(dir, $"{name}.md"), string.Join(Environment.NewLine, reports.Select(r => r.ToMarkdown())));
        File.WriteAllLines(Path.Combine(dir, $"{name}.csv"), reports.SelectMany(r => r.ToCsvRows()).Prepend(CsvHeader));
        var html = new StringBuilder();
        html.AppendLine(CultureInfo.InvariantCulture, $"<!doctype html><html><head><meta charset=\"utf-8\"><title>Bridge load: {WebUtility.HtmlEncode(name)}</title>");
        html.AppendLine("<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}.pass{color:#070}.fail{color:#b00;font-weight:bold}</style></head><body>");
        html.AppendLine(CultureInfo.InvariantCulture, $"<h1>Bridge load: {WebUtility.HtmlEncode(name)}</h1>");
        foreach (var r in reports)
        {
            html.Append(r.ToHtmlSection());
        }

        html.AppendLine("</body></html>");
        File.WriteAllText(Path.Combine(dir, $"{name}.html"), html.ToString());
    }

    private sealed record Row(string Metric, string Text, double? Value, string Unit);
}
