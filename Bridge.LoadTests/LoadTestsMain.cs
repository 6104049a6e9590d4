using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using Bridge.LoadTests.Scenarios;

namespace Bridge.LoadTests;

/// <summary>
/// Bridge.LoadTests: scenarios as code that start their own servers on loopback (or, with <c>--target</c>, load a
/// deployment the user names), run bounded load with live progress, write Markdown/HTML/CSV/JUnit reports and exit
/// non-zero when a threshold is violated. Also the <c>bridgectl bench</c> command.
/// </summary>
internal static class LoadTestsMain
{
    public static async Task<int> RunAsync(string[] args, string command, CancellationToken cancellationToken)
    {
        var a = new Args(args, command);
        var configuration = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
        if (a.String("--report-dir") is { } reports)
        {
            Report.Directory = Path.GetFullPath(reports);
        }

        // Every run is bounded: nothing here runs longer than this, whatever the arguments.
        using var cts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        cts.CancelAfter(TimeSpan.FromMinutes(a.Int("--max-minutes", 30)));
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };

        try
        {
            var ok = a.Command switch
            {
                "smoke" => await Runner.RunAsync("load-smoke", Catalog.Smoke(configuration), cts.Token, again: () => Catalog.Smoke(configuration)),
                "bench" => await BenchAsync(a, configuration, cts.Token),
                "peers" => await PeerComparison.RunAsync(a, configuration, cts.Token),
                var name when Catalog.Create(name, a, configuration) is { } scenario => (await Runner.RunOneAsync(scenario, cts.Token)).Passed,
                // Failure tests on a local 3+3+nginx cluster: Bridge.LoadTests/Cluster/ (make cluster-test).
                "cluster" => await Cluster.ClusterFailureTests.RunAsync(args, configuration, cts.Token),
                _ => Help(),
            };
            return ok ? 0 : 1;
        }
        catch (ArgumentException ex)
        {
            // A bad option (e.g. a --target scenario that only runs on its own servers): say so, no stack trace.
            Console.Error.WriteLine($"error: {ex.Message}");
            return 2;
        }
    }

    // make bench: the peer comparison, every scenario at full size, then one table of every goal (Harness/Goals.cs).
    // Thresholds decide the exit code; missed goals only with --fail-on-goals.
    private static async Task<bool> BenchAsync(Args a, string configuration, CancellationToken cancellationToken)
    {
        var reports = new List<Report>();
        if (!a.Has("--no-peers"))
        {
            reports.AddRange(await PeerComparison.CompareAsync(a, configuration, cancellationToken));
        }

        reports.AddRange(await Runner.RunSuiteAsync("bench", Catalog.Bench(configuration, a.String("--scenarios")), cancellationToken));
        var goalsMet = GoalTable.Write("bench", reports, a.Line);
        return reports.All(r => r.Passed) && (goalsMet || !a.Has("--fail-on-goals"));
    }

    private static bool Help()
    {
        Console.WriteLine(Catalog.Usage);
        return false;
    }
}
