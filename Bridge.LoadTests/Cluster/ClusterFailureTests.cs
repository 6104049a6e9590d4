using System.Diagnostics;
using System.Globalization;
using Bridge.Client;
using Bridge.LoadTests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.LoadTests.Cluster;

/// <summary>
/// Failure tests on the local cluster (issue 8): while clients connected through nginx to all three workers publish
/// and receive continuously, one part fails at a time. The clients are applications on the shipped .NET client
/// (<see cref="AppClient"/>), so its reconnect and resume logic is what is tested. Each test uses its own rooms and clients, checks every
/// client's deliveries by seq against every acknowledged publish, and reads the stream at the end to check that it
/// kept every acknowledged message exactly once. Bounded: a few clients at a few messages a second, every wait has
/// a deadline, and the whole run stops by itself.
/// </summary>
internal static class ClusterFailureTests
{
    private const string Stream = "ROOMS";

    private static readonly FailureTest[] Tests =
    [
        new("worker-kill", "SIGKILL the worker with the most clients; its clients reconnect through nginx to the others and resume; the worker is started again", KillWorkerAsync),
        new("nats-kill", "SIGKILL the nats-server leading the stream (one of three), start it again after 5 s", KillNatsAsync),
        new("rolling-restart", "SIGTERM each worker in turn, start it again and wait until it is ready before the next", RollingRestartAsync),
        new("nats-cluster-restart", "SIGKILL all three nats-servers at once, start them again after 2 s", RestartNatsClusterAsync),
    ];

    public static async Task<bool> RunAsync(string[] args, string configuration, CancellationToken cancellationToken)
    {
        var options = new Options(
            Clients: IntArg(args, "--clients", 9),
            Rooms: IntArg(args, "--rooms", 3),
            Rate: IntArg(args, "--rate", 5),
            Steady: TimeSpan.FromSeconds(IntArg(args, "--steady-seconds", 3)));
        var only = StringArg(args, "--only");
        var selected = Tests.Where(t => only is null || only.Split(',').Contains(t.Name)).ToList();
        if (selected.Count == 0)
        {
            Console.Error.WriteLine($"--only: one or more of {string.Join(", ", Tests.Select(t => t.Name))}");
            return false;
        }

        var command = $"dotnet run --project Bridge.LoadTests -c {configuration} -- cluster --clients {options.Clients} --rooms {options.Rooms} --rate {options.Rate}" +
                      (only is null ? "" : $" --only {only}");
        var report = new FailureReport(command, options);
        var total = Stopwatch.StartNew();
        // A fresh 3-node JetStream cluster on a loaded machine sometimes keeps one peer out of the meta group past
        // the 30 s formation wait (seen twice in ~10 runs; the servers were healthy and routed). That is start-up
        // of the test bed, not a failure under test: start it again, at most three times in all.
        LocalCluster? cluster = null;
        for (var attempt = 1; cluster is null; attempt++)
        {
            try
            {
                cluster = await LocalCluster.StartAsync(configuration, cancellationToken);
            }
            catch (TimeoutException ex) when (attempt < 3)
            {
                Console.Error.WriteLine($"the local cluster did not form (attempt {attempt} of 3), starting it again: {ex.Message.Split(Environment.NewLine)[0]}");
            }
            catch (Exception ex) when (ex is InvalidOperationException or TimeoutException)
            {
                Console.Error.WriteLine($"the local cluster did not start: {ex.Message}");
                return false;
            }
        }


        report.StartupTime = total.Elapsed;
        // --keep: leave the cluster's folder (logs of every process, nginx's access log) for a look afterwards.
        cluster.KeepFiles = args.Contains("--keep");
        await using (cluster)
        {
            foreach (var test in selected)
            {
                Console.Error.WriteLine($"cluster: {test.Name}: {test.Description}");
                PhaseResult result;
                try
                {
                    result = await RunTestAsync(cluster, test, options, cancellationToken);
                }
                catch (Exception ex) when (ex is TimeoutException or InvalidOperationException or NatsException)
                {
                    result = new PhaseResult(test) { Failure = $"{ex.GetType().Name}: {ex.Message}" };
                }

                report.Add(result);
                Console.Error.WriteLine($"cluster: {test.Name}: {(result.Passed ? "pass" : "FAIL")} ({result.Duration.TotalSeconds:N0} s)");
                if (!result.Passed)
                {
                    cluster.KeepFiles = true;
                }
            }

            report.TotalTime = total.Elapsed;
            report.Write();
        }

        return report.Passed;
    }

    private static async Task<PhaseResult> RunTestAsync(LocalCluster cluster, FailureTest test, Options o, CancellationToken cancellationToken)
    {
        var result = new PhaseResult(test);
        var sw = Stopwatch.StartNew();
        var rooms = Enumerable.Range(0, o.Rooms).Select(k => $"cluster.{test.Name}.r{k}").ToArray();
        var clients = new List<AppClient>();
        try
        {
            // Connected one at a time, so that nginx's least_conn spreads them evenly over the workers.
            for (var i = 0; i < o.Clients; i++)
            {
                var client = new AppClient(i, ClientOptions(cluster.WebSocketUrl, cluster.Token($"{test.Name}-{i}")), rooms);
                clients.Add(client);
                await client.StartAsync(cancellationToken).WaitAsync(TimeSpan.FromSeconds(30), cancellationToken);
            }

            var perWorker = clients.GroupBy(c => c.Server ?? "?").ToDictionary(g => g.Key, g => g.Count());
            result.InitialSpread = string.Join(", ", perWorker.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}: {kv.Value}"));
            result.Check("clients on all three workers", perWorker.Count == LocalCluster.Size, result.InitialSpread);

            for (var i = 0; i < clients.Count; i++)
            {
                clients[i].StartPublishing(rooms[i % rooms.Length], o.Rate);
            }

            var publishStart = Stopwatch.GetTimestamp();
            await Task.Delay(o.Steady, cancellationToken);

            var context = new FaultContext(cluster, clients, result, cancellationToken);
            await test.Inject(context);

            // Every client back, connected and joined, then steady traffic again.
            var recovered = Stopwatch.StartNew();
            await WaitUntilAsync(() => clients.All(c => c.Ready), TimeSpan.FromSeconds(60), "every client reconnected and joined", cancellationToken);
            result.Notes.Add($"all clients connected and joined {recovered.Elapsed.TotalSeconds:N1} s after the fault's last step");
            await Task.Delay(o.Steady, cancellationToken);

            await Task.WhenAll(clients.Select(c => c.StopPublishingAsync())).WaitAsync(TimeSpan.FromSeconds(60), cancellationToken);
            var publishEnd = Stopwatch.GetTimestamp();

            // Every acknowledged message must reach every client that was in its room when it was stored.
            var acked = clients.SelectMany(c => c.Acked).ToList();
            await WaitUntilAsync(() => Lost(clients, rooms, acked) == 0, TimeSpan.FromSeconds(30), null, cancellationToken);

            result.Published = acked.Count;
            result.Lost = Lost(clients, rooms, acked);
            result.Delivered = clients.Sum(c => rooms.Sum(r => (long)c.Received(r).Count));
            result.DuplicateDeliveries = clients.Sum(c => c.DuplicateDeliveries);
            result.PublishRetries = clients.Sum(c => c.PublishRetries);
            result.Reconnects = clients.Sum(c => c.Connections - 1);
            (result.LongestPause, result.PauseClient) = LongestPause(clients, publishStart, publishEnd);
            result.CloseCodes = string.Join(", ", clients.SelectMany(c => c.Closes).GroupBy(x => x).OrderByDescending(g => g.Count()).Select(g => $"{g.Key} ×{g.Count()}"));
            result.Errors = string.Join(", ", clients.SelectMany(c => c.Errors).GroupBy(x => x).Select(g => $"{g.Key} ×{g.Count()}"));

            // A message id stored under two seqs is a duplicate no client-side seq check can remove.
            var clientDuplicates = clients.Sum(c => rooms.Sum(r => c.ReceivedWithIds(r).Where(m => m.Id is not null).GroupBy(m => m.Id).Count(g => g.Count() > 1)));
            var stream = await ReadStreamAsync(cluster.NatsUrls, $"rooms.cluster.{test.Name}.>", cancellationToken);
            var storedIds = stream.Values.Where(v => v.Id is not null).GroupBy(v => v.Id!).ToDictionary(g => g.Key, g => g.Count(), StringComparer.Ordinal);
            result.Duplicated = storedIds.Count(kv => kv.Value > 1);
            result.Stored = stream.Count;
            result.AckedMissingFromStream = acked.Count(a => !stream.TryGetValue(a.Seq, out var m) || m.Id != a.Id || m.Subject != $"rooms.{a.Room}");

            result.Check("lost = 0", result.Lost == 0, result.Lost.ToString("N0", CultureInfo.InvariantCulture));
            result.Check("duplicated = 0 (after client de-duplication by seq)", result.Duplicated == 0 && clientDuplicates == 0 && result.DuplicateDeliveries == 0,
                $"{result.Duplicated} ids stored twice, {clientDuplicates} delivered under two seqs, {result.DuplicateDeliveries} seqs delivered twice");
            result.Check("the stream keeps every acknowledged message", result.AckedMissingFromStream == 0,
                $"{result.AckedMissingFromStream} of {acked.Count:N0} missing");
            result.Check("messages were published during the test", result.Published > 0, result.Published.ToString("N0", CultureInfo.InvariantCulture));
        }
        finally
        {
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
            result.Duration = sw.Elapsed;
        }

        return result;
    }

    /// <summary>
    /// The shipped client's settings, as an application that must not lose anything would choose them: back within a
    /// second after a drop, a publish retried by the client across a 5 s leader election, a dead connection noticed in 8 s.
    /// </summary>
    private static BridgeClientOptions ClientOptions(Uri url, string token) => new()
    {
        Uri = url,
        TokenProvider = _ => ValueTask.FromResult<string?>(token),
        ReconnectMinDelay = TimeSpan.FromMilliseconds(100),
        ReconnectMaxDelay = TimeSpan.FromSeconds(1),
        MaxPublishAttempts = 20,
        AckTimeout = TimeSpan.FromSeconds(8),
    };

    // ---- the faults

    private static async Task KillWorkerAsync(FaultContext f)
    {
        var victim = Enumerable.Range(0, LocalCluster.Size)
            .OrderByDescending(i => f.Clients.Count(c => c.Server == LocalCluster.WorkerId(i))).First();
        var moved = f.Clients.Where(c => c.Server == LocalCluster.WorkerId(victim)).ToList();
        var sw = Stopwatch.StartNew();
        await f.Cluster.KillWorkerAsync(victim);
        await WaitUntilAsync(() => moved.All(c => c.Ready && c.Server != LocalCluster.WorkerId(victim)), TimeSpan.FromSeconds(60),
            "the killed worker's clients resumed elsewhere", f.CancellationToken);
        f.Result.Notes.Add($"SIGKILL {LocalCluster.WorkerId(victim)}: its {moved.Count} clients resumed on " +
                           $"{string.Join(", ", moved.Select(c => c.Server).Distinct().Order(StringComparer.Ordinal))} within {sw.Elapsed.TotalSeconds:N1} s");
        f.Cluster.StartWorker(victim);
        var ready = await f.Cluster.WaitWorkerReadyAsync(victim, TimeSpan.FromSeconds(60), f.CancellationToken);
        f.Result.Notes.Add($"{LocalCluster.WorkerId(victim)} started again, ready after {ready.TotalSeconds:N1} s");
    }

    private static async Task KillNatsAsync(FaultContext f)
    {
        var leader = await f.Cluster.StreamLeaderAsync(Stream, f.CancellationToken);
        var victim = leader >= 0 ? leader : 0;
        await f.Cluster.KillNatsAsync(victim);
        await Task.Delay(TimeSpan.FromSeconds(5), f.CancellationToken);
        f.Cluster.StartNats(victim);
        var formed = await f.Cluster.WaitNatsClusterAsync(TimeSpan.FromSeconds(60), f.CancellationToken);
        var newLeader = await f.Cluster.StreamLeaderAsync(Stream, f.CancellationToken);
        f.Result.Notes.Add($"SIGKILL {LocalCluster.NatsName(victim)}{(leader >= 0 ? " (the stream leader)" : "")}, down 5 s; " +
                           $"started again, cluster whole after {formed.TotalSeconds:N1} s; stream leader now " +
                           (newLeader >= 0 ? LocalCluster.NatsName(newLeader) : "unknown"));
    }

    private static async Task RollingRestartAsync(FaultContext f)
    {
        for (var i = 0; i < LocalCluster.Size; i++)
        {
            var (took, killed) = await f.Cluster.StopWorkerAsync(i, TimeSpan.FromSeconds(40));
            f.Cluster.StartWorker(i);
            var ready = await f.Cluster.WaitWorkerReadyAsync(i, TimeSpan.FromSeconds(60), f.CancellationToken);
            f.Result.Notes.Add($"SIGTERM {LocalCluster.WorkerId(i)}: exited after {took.TotalSeconds:N1} s{(killed ? " (did not exit in 40 s: SIGKILL)" : "")}, ready again after {ready.TotalSeconds:N1} s");
            // The shutdown contract (docs/operations.md): the process exits within the drain timeout.
            var bound = LocalCluster.DrainTimeout + TimeSpan.FromSeconds(5);
            f.Result.Check($"{LocalCluster.WorkerId(i)} exits on SIGTERM within the drain timeout ({LocalCluster.DrainTimeout.TotalSeconds:N0} s) + 5 s",
                !killed && took <= bound, $"{took.TotalSeconds:N1} s");
        }
    }

    private static async Task RestartNatsClusterAsync(FaultContext f)
    {
        await Task.WhenAll(Enumerable.Range(0, LocalCluster.Size).Select(f.Cluster.KillNatsAsync));
        await Task.Delay(TimeSpan.FromSeconds(2), f.CancellationToken);
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < LocalCluster.Size; i++)
        {
            f.Cluster.StartNats(i);
        }

        var formed = await f.Cluster.WaitNatsClusterAsync(TimeSpan.FromSeconds(60), f.CancellationToken);
        for (var i = 0; i < LocalCluster.Size; i++)
        {
            await f.Cluster.WaitWorkerReadyAsync(i, TimeSpan.FromSeconds(60), f.CancellationToken);
        }

        f.Result.Notes.Add($"SIGKILL nats-1..3, down 2 s; cluster formed again after {formed.TotalSeconds:N1} s, every worker ready after {sw.Elapsed.TotalSeconds:N1} s");
    }

    // ---- checks

    private static long Lost(List<AppClient> clients, string[] rooms, List<(string Room, string Id, ulong Seq)> acked)
    {
        long lost = 0;
        foreach (var client in clients)
        {
            foreach (var room in rooms)
            {
                var start = client.StartOf(room) ?? ulong.MaxValue;
                var received = client.Received(room);
                lost += acked.Count(a => a.Room == room && a.Seq > start && !received.Contains(a.Seq));
            }
        }

        return lost;
    }

    /// <summary>The longest time any client went without a new message while messages were being published.</summary>
    private static (TimeSpan Pause, int Client) LongestPause(List<AppClient> clients, long from, long to)
    {
        var longest = TimeSpan.Zero;
        var who = -1;
        for (var i = 0; i < clients.Count; i++)
        {
            var previous = from;
            foreach (var at in clients[i].Arrivals.Where(t => t <= to).Append(to))
            {
                var gap = Stopwatch.GetElapsedTime(Math.Max(previous, from), at);
                if (gap > longest && at >= from)
                {
                    (longest, who) = (gap, i);
                }

                previous = at;
            }
        }

        return (longest, who);
    }

    /// <summary>Every message stored under <paramref name="filter"/>: seq → (subject, Bridge-Id).</summary>
    private static async Task<Dictionary<ulong, (string Subject, string? Id)>> ReadStreamAsync(string natsUrls, string filter, CancellationToken cancellationToken)
    {
        await using var nats = new NatsConnection(new NatsOpts { Url = natsUrls, Name = "cluster-failure-tests" });
        var js = new NatsJSContext(nats);
        var info = await js.GetStreamAsync(Stream, new StreamInfoRequest { SubjectsFilter = filter }, cancellationToken);
        var expected = info.Info.State.Subjects?.Values.Sum() ?? 0;
        var stored = new Dictionary<ulong, (string, string?)>();
        if (expected == 0)
        {
            return stored;
        }

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var consumer = await js.CreateOrderedConsumerAsync(Stream, new NatsJSOrderedConsumerOpts { FilterSubjects = [filter] }, timeout.Token);
        await foreach (var msg in consumer.ConsumeAsync<byte[]>(cancellationToken: timeout.Token))
        {
            var id = msg.Headers is { } h && h.TryGetValue("Bridge-Id", out var v) ? v.ToString() : null;
            stored[msg.Metadata!.Value.Sequence.Stream] = (msg.Subject, id);
            if (stored.Count >= expected)
            {
                break;
            }
        }

        return stored;
    }

    private static async Task WaitUntilAsync(Func<bool> condition, TimeSpan timeout, string? what, CancellationToken cancellationToken)
    {
        var sw = Stopwatch.StartNew();
        while (!condition())
        {
            if (sw.Elapsed > timeout)
            {
                if (what is null)
                {
                    return; // the caller reports what is still missing
                }

                throw new TimeoutException($"not within {timeout.TotalSeconds:N0} s: {what}");
            }

            await Task.Delay(50, cancellationToken);
        }
    }

    private static int IntArg(string[] args, string name, int fallback)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1], CultureInfo.InvariantCulture) : fallback;
    }

    private static string? StringArg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    internal sealed record Options(int Clients, int Rooms, int Rate, TimeSpan Steady);

    internal sealed record FailureTest(string Name, string Description, Func<FaultContext, Task> Inject);

    internal sealed record FaultContext(LocalCluster Cluster, List<AppClient> Clients, PhaseResult Result, CancellationToken CancellationToken);
}
