using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using Bridge.LoadTests.Scenarios;

namespace Bridge.LoadTests;

/// <summary>
/// Bridge.LoadTests: scenarios as code that start their own servers on loopback (or, with <c>--target</c>, load a
/// deployment the user names), run bounded load with live progress, write Markdown/HTML/CSV/JUnit reports and exit
/// non-zero when a threshold is violated. Also the <c>bridge bench</c> command.
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
                "smoke" => await Runner.RunAsync("load-smoke", Catalog.Smoke(configuration), cts.Token),
                "bench" => await Runner.RunAsync("bench", Catalog.Bench(configuration), cts.Token),
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

    private static bool Help()
    {
        Console.WriteLine(Catalog.Usage);
        return false;
    }
}
