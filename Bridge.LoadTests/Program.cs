using Bridge.LoadTests.Harness;
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
    "bench" => await Runner.RunAsync("bench", Catalog.Bench(configuration), cts.Token),
    "peers" => await PeerComparison.RunAsync(a, configuration, cts.Token),
    var name when Catalog.Create(name, a, configuration) is { } scenario => (await Runner.RunOneAsync(scenario, cts.Token)).Passed,
    // Failure tests on a local 3+3+nginx cluster: Bridge.LoadTests/Cluster/ (make cluster-test).
    "cluster" => await Bridge.LoadTests.Cluster.ClusterFailureTests.RunAsync(args, configuration, cts.Token),
    _ => Help(),
};
return ok ? 0 : 1;

static bool Help()
{
    Console.WriteLine(Catalog.Usage);
    return false;
}
