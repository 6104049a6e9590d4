using System.Globalization;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// A pass/fail bound on one named metric of a scenario; a failed threshold makes the process exit non-zero.
/// A metric the scenario did not produce fails the threshold (a broken run must not pass silently).
/// </summary>
internal sealed record Threshold(string Metric, double Limit, bool UpperBound, string Unit)
{
    public static Threshold AtMost(string metric, double limit, string unit = "") => new(metric, limit, true, unit);

    public static Threshold AtLeast(string metric, double limit, string unit = "") => new(metric, limit, false, unit);

    public static Threshold Zero(string metric) => new(metric, 0, true, "");

    /// <summary>
    /// A threshold from the command line: <c>metric&lt;=value</c>, <c>metric&gt;=value</c> or <c>metric=0</c>, with a
    /// metric key of the report (e.g. <c>latency_p99_ms&lt;=200</c>, <c>delivered_per_s&gt;=5000</c>, <c>errors=0</c>).
    /// </summary>
    public static Threshold Parse(string text)
    {
        foreach (var (op, upper) in new[] { ("<=", true), (">=", false), ("=", true) })
        {
            var at = text.IndexOf(op, StringComparison.Ordinal);
            if (at > 0 && double.TryParse(text[(at + op.Length)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var limit) &&
                (op != "=" || limit == 0))
            {
                return new Threshold(text[..at].Trim(), limit, upper, "");
            }
        }

        throw new ArgumentException($"--threshold '{text}' must be metric<=value, metric>=value or metric=0 (metric keys: docs/benchmarks.md)");
    }

    public string Describe() =>
        Limit == 0 && UpperBound ? $"{Metric} = 0" : $"{Metric} {(UpperBound ? "<=" : ">=")} {Format(Limit)}{Suffix}";

    public (bool Passed, string Measured) Evaluate(IReadOnlyDictionary<string, double> metrics)
    {
        if (!metrics.TryGetValue(Metric, out var value) || double.IsNaN(value))
        {
            return (false, "not measured");
        }

        return (UpperBound ? value <= Limit : value >= Limit, Format(value) + Suffix);
    }

    private string Suffix => Unit.Length > 0 ? " " + Unit : "";

    private static string Format(double v) => v.ToString(Math.Abs(v) >= 100 || v == Math.Floor(v) ? "N0" : "N2", CultureInfo.InvariantCulture);
}
