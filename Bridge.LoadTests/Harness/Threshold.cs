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
