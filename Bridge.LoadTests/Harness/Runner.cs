using Bridge.LoadTests.Infrastructure;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// Runs scenarios one after another, each bounded by its spec's hard limit, shows live progress, writes each
/// scenario's report and a suite report (results/&lt;suite&gt;.md, .html, .csv), and says whether every
/// threshold held.
/// </summary>
internal static class Runner
{
    public static async Task<bool> RunAsync(
        string suite, IReadOnlyList<IScenario> scenarios, CancellationToken cancellationToken, Func<IReadOnlyList<IScenario>>? again = null) =>
        (await RunSuiteAsync(suite, scenarios, cancellationToken, again)).All(r => r.Passed);

    /// <summary>
    /// Runs every scenario and writes the suite report; returns the reports. With <paramref name="again"/> (fresh
    /// instances of the same scenarios, in the same order), a scenario that failed runs once more: passing then, it is
    /// named on a <c>FLAKY</c> line with what failed the first time (as scripts/test-dotnet.sh does for tests: a
    /// latency bound missed on a machine busy with other work is seen and looked at, and the run goes on).
    /// </summary>
    public static async Task<IReadOnlyList<Report>> RunSuiteAsync(
        string suite, IReadOnlyList<IScenario> scenarios, CancellationToken cancellationToken, Func<IReadOnlyList<IScenario>>? again = null)
    {
        var reports = new List<Report>();
        var flaky = new List<string>();
        for (var i = 0; i < scenarios.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var report = await RunOneAsync(scenarios[i], cancellationToken);
            if (!report.Passed && again is not null)
            {
                var failed = $"{report.Scenario}: {string.Join("; ", report.Checks.Where(c => !c.Passed).Select(c => $"{c.Check} ({c.Detail})"))}";
                Console.WriteLine($"{suite}: {failed}; running it once more");
                var retry = await RunOneAsync(again()[i], cancellationToken);
                if (retry.Passed)
                {
                    flaky.Add(failed);
                    report = retry;
                }
            }

            reports.Add(report);
        }

        foreach (var f in flaky)
        {
            Console.WriteLine($"== FLAKY (failed in the run, passed when run again; fix it): {f}");
        }

        if (reports.Count > 1)
        {
            Report.WriteFiles(suite, reports);
            Console.WriteLine($"{suite}: {reports.Count(r => r.Passed)} of {reports.Count} scenarios passed");
            foreach (var r in reports.Where(r => !r.Passed))
            {
                Console.WriteLine($"  FAILED {r.Scenario}: {string.Join("; ", r.Checks.Where(c => !c.Passed).Select(c => $"{c.Check} ({c.Detail})"))}");
            }
        }

        return reports;
    }

    public static async Task<Report> RunOneAsync(IScenario scenario, CancellationToken cancellationToken)
    {
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(scenario.Spec.MaxTime);
        using var ctx = new ScenarioContext(scenario.Spec, cts.Token);
        var aborted = false;
        try
        {
            await ProgressView.RunAsync(ctx, () => scenario.RunAsync(ctx));
        }
        catch (Exception ex)
        {
            aborted = true;
            var why = cts.IsCancellationRequested && !cancellationToken.IsCancellationRequested
                ? $"over its {scenario.Spec.MaxTime.TotalSeconds:N0} s limit"
                : ex.GetType().Name;
            ctx.Stats.Error("aborted: " + why);
            ctx.Report.Add("aborted", $"{why}: {ex.Message}");
            Console.Error.WriteLine($"{scenario.Spec.Name}: {ex}");
        }

        var report = ctx.Complete(aborted);
        report.Write();
        return report;
    }
}
