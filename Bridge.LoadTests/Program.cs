using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using Bridge.LoadTests.Scenarios;

// Bridge.LoadTests: scenarios as code that start their own servers on loopback, run bounded load with live
// progress, write Markdown/HTML/CSV reports to results/ and exit non-zero when a threshold is violated.
var a = new Args(args);
var configuration = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";

// Every run is bounded: nothing here runs longer than this, whatever the arguments.
using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(a.Int("--max-minutes", 30)));
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};

var ok = a.Command switch
{
    "smoke" => await Runner.RunAsync("load-smoke", Catalog.Smoke(configuration), cts.Token),
    "bench" => await BenchAsync(a, configuration, cts.Token),
    "peers" => await PeerComparison.RunAsync(a, configuration, cts.Token),
    var name when Catalog.Create(name, a, configuration) is { } scenario => (await Runner.RunOneAsync(scenario, cts.Token)).Passed,
    // Failure tests on a local 3+3+nginx cluster: Bridge.LoadTests/Cluster/ (make cluster-test).
    "cluster" => await Bridge.LoadTests.Cluster.ClusterFailureTests.RunAsync(args, configuration, cts.Token),
    _ => Help(),
};
return ok ? 0 : 1;

// make bench: the peer comparison, every scenario at full size, then one table of every goal (Harness/Goals.cs).
// Thresholds decide the exit code; missed goals only with --fail-on-goals.
static async Task<bool> BenchAsync(Args a, string configuration, CancellationToken cancellationToken)
{
    var reports = new List<Report>();
    if (!a.Has("--no-peers"))
    {
        reports.AddRange(await PeerComparison.CompareAsync(a, configuration, cancellationToken));
    }

    reports.AddRange(await Runner.RunSuiteAsync("bench", Catalog.Bench(configuration), cancellationToken));
    var goalsMet = GoalTable.Write("bench", reports, a.Line);
    return reports.All(r => r.Passed) && (goalsMet || !a.Has("--fail-on-goals"));
}

static bool Help()
{
    Console.WriteLine(Catalog.Usage);
    return false;
}
