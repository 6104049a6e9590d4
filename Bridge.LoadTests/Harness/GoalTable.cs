using System.Globalization;
using System.Text;
using Bridge.LoadTests.Infrastructure;
using Bridge.Testing;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// The run's summary: one row per goal (<see cref="Goals.All"/>) with what its scenario measured, printed and written
/// to results/goals-&lt;suite&gt;.md and .csv. A goal measured several times (<c>--repeat</c>) is judged on its median.
/// </summary>
internal static class GoalTable
{
    /// <summary>Prints and writes the table; true when every goal is met (a goal not measured is not met).</summary>
    public static bool Write(string suite, IEnumerable<Report> reports, string command)
    {
        var measured = reports.SelectMany(r => r.Goals.Select(g => (g.Goal, g.Measured, Scenario: g.Basis is null ? r.Scenario : $"{r.Scenario} ({g.Basis})"))).ToList();
        var md = new StringBuilder();
        Report.AppendHeading(md, $"Goals ({suite})", command);
        md.AppendLine("| goal | target | measured | result | scenario |");
        md.AppendLine("|---|---|---|---|---|");
        var csv = new List<string> { "goal,target,measured,result,scenario" };
        var allMet = true;
        foreach (var goal in Goals.All.Concat(measured.Select(m => m.Goal)).Distinct())
        {
            var values = measured.Where(m => m.Goal == goal).ToList();
            var median = Median(values.Select(v => v.Measured).Where(v => !double.IsNaN(v)).ToList());
            var met = median is { } m && goal.IsMet(m);
            allMet &= met;
            var shown = median is null ? "not measured"
                : Report.Format(median.Value) + (values.Count > 1 ? " [" + string.Join(", ", values.Select(v => Report.Format(v.Measured))) + "]" : "");
            var result = median is null ? "NOT MEASURED" : met ? "met" : "MISSED";
            var scenarios = string.Join(", ", values.Select(v => v.Scenario).Distinct());
            md.AppendLine(CultureInfo.InvariantCulture, $"| {goal.Name} | {goal.Describe()} | {shown} | {result} | {scenarios} |");
            csv.Add(string.Join(',', Q(goal.Name), Q(goal.Describe()), median?.ToString("R", CultureInfo.InvariantCulture) ?? "", result, Q(scenarios)));
        }

        Console.WriteLine(md.ToString());
        var dir = Report.Directory;
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, $"goals-{suite}.md"), md.ToString());
        File.WriteAllLines(Path.Combine(dir, $"goals-{suite}.csv"), csv);
        return allMet;
    }

    /// <summary>The median, or null for no values.</summary>
    public static double? Median(IReadOnlyList<double> values)
    {
        var median = RoundMedian.Of(values);
        return double.IsNaN(median) ? null : median;
    }

    private static string Q(string s) => s.Contains(',') || s.Contains('"') ? "\"" + s.Replace("\"", "\"\"") + "\"" : s;
}
