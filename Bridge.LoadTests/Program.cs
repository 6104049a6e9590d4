using Bridge.LoadTests.Scenarios;

// Bridge.LoadTests: benchmarks that start their own nats-server and worker processes on loopback, run bounded
// load, print a Markdown report (also written to results/) and exit non-zero when a threshold is violated.
var command = args.Length > 0 ? args[0] : "help";
int Arg(string name, int fallback)
{
    var i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : fallback;
}

var configuration = AppContext.BaseDirectory.Contains("/Release/", StringComparison.Ordinal) ? "Release" : "Debug";
// Every run is bounded: nothing here runs longer than this, whatever the arguments.
using var cts = new CancellationTokenSource(TimeSpan.FromMinutes(10));
Console.CancelKeyPress += (_, e) =>
{
    e.Cancel = true;
    cts.Cancel();
};

var ok = command switch
{
    "rooms" => await RoomActivationScenario.RunAsync(Arg("--rooms", 10_000), Arg("--connections", 100), Arg("--messages", 20_000), configuration, cts.Token),
    "rooms-compare" => await RoomActivationScenario.CompareAsync(Arg("--rooms", 1_000), cts.Token),
    "resume" => await ResumeScenario.RunAsync(Arg("--messages", 10_000), Arg("--rooms", 500), Arg("--per-room", 20), configuration, cts.Token),
    "storm" => await ReconnectStormScenario.RunAsync(Arg("--clients", 200), Arg("--rate", 50), Arg("--seconds", 6), configuration, cts.Token),
    "fanout" => await FanoutScenario.RunAsync(Arg("--connections", 1_000), Arg("--messages", 200), Arg("--rate", 20), TimeSpan.FromSeconds(Arg("--seconds", 5)), Arg("--p99-ms", 250), configuration, cts.Token),
    // Failure tests on a local 3+3+nginx cluster: Bridge.LoadTests/Cluster/ (make cluster-test).
    "cluster" => await Bridge.LoadTests.Cluster.ClusterFailureTests.RunAsync(args, configuration, cts.Token),
    _ => Help(),
};
return ok ? 0 : 1;

static bool Help()
{
    Console.WriteLine("""
        usage: dotnet run --project Bridge.LoadTests -c Release -- <scenario> [options]
          rooms          --rooms 10000 --connections 100 --messages 20000  activate N rooms on one worker; server memory, time, delivery
          rooms-compare  --rooms 1000                     core subscriptions vs JetStream consumers per room
          fanout         --connections 1000 --messages 200 --rate 20 --seconds 5 --p99-ms 250
          storm          --clients 200 --rate 50 --seconds 6                every client drops and resumes elsewhere: lost/duplicated
          resume         --messages 10000 --rooms 500 --per-room 20     replay rate; dashboard resuming many rooms
          cluster        --clients 9 --rooms 3 --rate 5 [--only worker-kill,nats-kill,rolling-restart,nats-cluster-restart]
                         failure tests on a local cluster (3 nats-server, 3 workers, nginx): lost/duplicated must be 0
        """);
    return false;
}
