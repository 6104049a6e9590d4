using System.Globalization;
using System.Text;
using Bridge.Testing;

namespace Bridge.LoadTests.Cluster;

/// <summary>What one failure test measured, and its pass/fail checks.</summary>
internal sealed class PhaseResult(ClusterFailureTests.FailureTest test)
{
    public ClusterFailureTests.FailureTest Test { get; } = test;

    public List<string> Notes { get; } = [];

    public List<(string Check, bool Passed, string Detail)> Checks { get; } = [];

    /// <summary>Set when the test could not run to the end (a deadline passed): a failure.</summary>
    public string? Failure { get; set; }

    public string InitialSpread { get; set; } = "";

    public long Published { get; set; }

    public long Delivered { get; set; }

    public long Lost { get; set; }

    public long Duplicated { get; set; }

    public long DuplicateDeliveries { get; set; }

    public long Stored { get; set; }

    public long AckedMissingFromStream { get; set; }

    public long PublishRetries { get; set; }

    public long Reconnects { get; set; }

    public TimeSpan LongestPause { get; set; }

    public int PauseClient { get; set; }

    public string CloseCodes { get; set; } = "";

    public string Errors { get; set; } = "";

    public TimeSpan Duration { get; set; }

    public bool Passed => Failure is null && Checks.Count > 0 && Checks.All(c => c.Passed);

    public void Check(string check, bool passed, string detail) => Checks.Add((check, passed, detail));
}

/// <summary>The failure tests' results as Markdown, on the console and in results/cluster-failures.md.</summary>
internal sealed class FailureReport(string command, ClusterFailureTests.Options options)
{
    private readonly List<PhaseResult> _results = [];

    public TimeSpan StartupTime { get; set; }

    public TimeSpan TotalTime { get; set; }

    public bool Passed => _results.Count > 0 && _results.All(r => r.Passed);

    public void Add(PhaseResult result) => _results.Add(result);

    public string ToMarkdown()
    {
        var sb = new StringBuilder();
        void Line(string text) => sb.Append(text).Append('\n');
        string N(long n) => n.ToString("N0", CultureInfo.InvariantCulture);

        Line("## Failure tests (local cluster)");
        Line("");
        Line($"Command: `{command}`  ");
        Line($"Machine: {Environment.ProcessorCount} cores, {Environment.OSVersion}, .NET {Environment.Version}, {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC  ");
        Line($"Topology: 3 nats-server (JetStream cluster, stream R3, file storage), 3 workers, nginx (least_conn) in front; all on loopback. " +
             $"Per test: {options.Clients} clients through nginx, each in all {options.Rooms} rooms and publishing to one at {options.Rate} msg/s; " +
             $"{options.Steady.TotalSeconds:N0} s of traffic before the fault and after recovery.  ");
        Line($"Cluster start: {StartupTime.TotalSeconds:N1} s; whole run: {TotalTime.TotalSeconds:N0} s.");
        Line("");
        Line("| test | published (acked) | delivered | lost | duplicated | seqs delivered twice | longest delivery pause | reconnects | publish retries | result |");
        Line("|---|---|---|---|---|---|---|---|---|---|");
        foreach (var r in _results)
        {
            Line($"| {r.Test.Name} | {N(r.Published)} | {N(r.Delivered)} | {N(r.Lost)} | {N(r.Duplicated)} | {N(r.DuplicateDeliveries)} | " +
                 $"{r.LongestPause.TotalMilliseconds.ToString("N0", CultureInfo.InvariantCulture)} ms | {N(r.Reconnects)} | {N(r.PublishRetries)} | {(r.Passed ? "pass" : "**FAIL**")} |");
        }

        Line("");
        Line("- **published**: publishes acknowledged by the stream (a retry with the same id counts once). " +
             "**delivered**: messages received, summed over clients, each seq once. **lost**: acknowledged messages of a room that a " +
             "client in that room never received (after its first join). **duplicated**: message ids the stream holds under more than one seq " +
             "(a duplicate that de-duplicating by seq cannot remove). **seqs delivered twice**: messages the client handed to the " +
             "application twice (its de-duplication by seq failed). **publish retries**: publishes the client sent again after " +
             "`publish_failed` or `rate_limited` (resends after a reconnect are not counted). **longest delivery pause**: the longest time any one client went " +
             "without a new message while publishing went on (at the rate above a client normally gets one every " +
             $"{(1000.0 / (options.Clients * options.Rate)).ToString("N0", CultureInfo.InvariantCulture)} ms).");
        foreach (var r in _results)
        {
            Line("");
            Line($"### {r.Test.Name}");
            Line("");
            Line(r.Test.Description + ".");
            Line("");
            if (r.Failure is not null)
            {
                Line($"- **did not finish**: {r.Failure}");
            }

            Line($"- clients at the start: {r.InitialSpread}");
            foreach (var note in r.Notes)
            {
                Line($"- {note}");
            }

            Line($"- stream: {N(r.Stored)} messages stored in this test's rooms");
            Line($"- longest pause seen by client {r.PauseClient}; closes seen by clients: {(r.CloseCodes.Length > 0 ? r.CloseCodes : "none")}");
            if (r.Errors.Length > 0)
            {
                Line($"- error frames / client errors: {r.Errors}");
            }

            Line($"- took {r.Duration.TotalSeconds:N1} s");
            Line("");
            Line("| check | result | measured |");
            Line("|---|---|---|");
            foreach (var (check, passed, detail) in r.Checks)
            {
                Line($"| {check} | {(passed ? "pass" : "**FAIL**")} | {detail} |");
            }
        }

        return sb.ToString();
    }

    public void Write()
    {
        var markdown = ToMarkdown();
        Console.WriteLine(markdown);
        var dir = Path.Combine(RepoPaths.Root, "results");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "cluster-failures.md"), markdown);
    }
}
