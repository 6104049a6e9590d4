using System.Diagnostics;
using System.Globalization;
using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Durable delivery costs (issue 3): the replay rate for one resuming client over WebSocket (JSON, MessagePack, each
/// plain and batched: several envelopes per message, the clients' default) and SSE against a bare NATS.Net ordered consumer reading the same room on the same server (issue 14's goal), and how
/// long a dashboard connection takes to resume many rooms in one <c>room.join</c>. Before the measured rounds, both
/// sides are warmed alike (<paramref name="warmupConnections"/> short resumes of a small separate room per transport
/// through the real worker, and as many bare ordered-consumer reads): a deployed worker has passed that many
/// connections within seconds of starting, so a cold worker's first rounds measure the runtime's tiering, not Bridge.
/// Then <paramref name="warmupRounds"/> full-size rounds, in turns and not counted, warm this process's own readers (the
/// bare consumer most), so that no measured round pairs a warm Bridge with a cold baseline.
/// Each goal is the median over the <paramref name="rounds"/> of a transport's rate ÷ the bare consumer's rate in the
/// same round (<see cref="RoundMedian"/>); the best rounds and their ratio are report rows.
/// </summary>
internal sealed class ResumeScenario(ScenarioSpec spec, string configuration, int replayMessages, int dashboardRooms, int perRoom, int rounds = 5, IReadOnlyList<string>? transports = null, string? compareWorker = null, int warmupConnections = 60, int warmupRounds = 3, IReadOnlyList<int>? directGetBatches = null) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        var cancellationToken = ctx.Token;
        var report = ctx.Report;
        await using var nats = await NatsServerProcess.StartAsync();
        (string, string)[] settings =
        [
            ("Bridge:Connections:MaxRoomsPerConnection", Math.Max(1000, dashboardRooms).ToString(CultureInfo.InvariantCulture)),
            // The whole backlog stays in the room (the default keeps a room's last 10,000).
            ("Bridge:Nats:MaxMessagesPerRoom", Math.Max(10_000, replayMessages).ToString(CultureInfo.InvariantCulture)),
        ];
        await using var worker = await WorkerProcess.StartAsync(nats.Url, configuration, settings);
        // Another build's worker on the same server (an A/B in one run): the replays run against both, in turn.
        await using var other = compareWorker is null ? null : await WorkerProcess.StartDllAsync(nats.Url, compareWorker, settings);
        ctx.Watch("worker", worker.Pid);
        ctx.Watch("nats-server", nats.Pid);
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Url });
        var js = new NatsJSContext(backend);
        var headers = new NatsHeaders { ["Bridge-Type"] = "load.tick" };
        var body = "{\"sent\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"u8.ToArray();

        async Task PublishAsync(IEnumerable<string> subjects)
        {
            var pending = new List<Task>(256);
            foreach (var subject in subjects)
            {
                pending.Add(js.PublishAsync(subject, body, headers: headers, cancellationToken: cancellationToken).AsTask());
                if (pending.Count == 256)
                {
                    await Task.WhenAll(pending);
                    pending.Clear();
                }
            }

            await Task.WhenAll(pending);
        }

        ctx.Status = "publishing the backlog";
        // 1. One client resumes a room from the start of a long backlog: against a bare ordered consumer reading the
        // same room on the same server, in rounds (bare, then each transport); each round's ratio pairs a transport
        // with the bare consumer of that round, and the goal is the median of those ratios.
        await PublishAsync(Enumerable.Repeat($"rooms.{ReplayRoom}", replayMessages));
        await PublishAsync(Enumerable.Repeat($"rooms.{WarmupRoom}", WarmupMessages));
        long missing = 0;

        // One replay of a room on one side: what it received, how long it took, and the CPU the worker and nats-server spent.
        // The client's CPU is this process's: during a replay only the one client reads (the sampler's tick aside). The
        // machine's idle and stolen time over the replay (null without /proc/stat) say how much of the cores it used.
        async Task<(long Received, TimeSpan Elapsed, TimeSpan WorkerCpu, TimeSpan NatsCpu, TimeSpan ClientCpu, MachineStat? Machine)> ReplayAsync(string key, string room, int messages)
        {
            var target = key.EndsWith(CompareSuffix, StringComparison.Ordinal) ? other! : worker;
            var machine = MachineStat.Read();
            var (workerCpu, natsCpu, clientCpu) = (ProcessStats.CpuTime(target.Pid), ProcessStats.CpuTime(nats.Pid), ProcessStats.CpuTime(Environment.ProcessId));
            var (received, elapsed) = key == "bare" ? await BareReplayAsync(js, room, messages, cancellationToken)
                : key.StartsWith(DirectGetKey + "raw", StringComparison.Ordinal)
                    ? await RawDirectGetReplayAsync(backend, room, messages, int.Parse(key.AsSpan(DirectGetKey.Length + 3), CultureInfo.InvariantCulture), cancellationToken)
                : key.StartsWith(DirectGetKey, StringComparison.Ordinal)
                    ? await BareDirectGetReplayAsync(backend, room, messages, int.Parse(key.AsSpan(DirectGetKey.Length), CultureInfo.InvariantCulture), cancellationToken)
                : await BridgeReplayAsync(target, key.Replace(CompareSuffix, "", StringComparison.Ordinal), room, cancellationToken);
            missing += Math.Abs(messages - received);
            ctx.Stats.Add(expected: messages, delivered: Math.Min(received, messages));
            var (workerAfter, natsAfter, clientAfter) = (ProcessStats.CpuTime(target.Pid), ProcessStats.CpuTime(nats.Pid), ProcessStats.CpuTime(Environment.ProcessId));
            return (received, elapsed, workerAfter - workerCpu, natsAfter - natsCpu, clientAfter - clientCpu, MachineStat.Read() - machine);
        }

        // CPU per message is steadier than time on a shared machine: who did the work, and how much.
        static string PerMessage(TimeSpan cpu, long received) => $"{cpu.TotalMicroseconds / Math.Max(1, received):N1} µs";

        // The warm-up: every side connects and resumes the small room as often, in turns, before round 1.
        if (warmupConnections > 0)
        {
            var spent = Runs.ToDictionary(r => r.Key, _ => (Elapsed: TimeSpan.Zero, WorkerCpu: TimeSpan.Zero, Received: 0L));
            var warmup = Stopwatch.StartNew();
            for (var i = 1; i <= warmupConnections; i++)
            {
                foreach (var (key, label) in Runs)
                {
                    ctx.Status = $"warm-up {i}/{warmupConnections}: {label}";
                    var (received, elapsed, workerCpu, _, _, _) = await ReplayAsync(key, WarmupRoom, WarmupMessages);
                    var s = spent[key];
                    spent[key] = (s.Elapsed + elapsed, s.WorkerCpu + workerCpu, s.Received + received);
                }
            }

            report.Metric("replay_warmup_ms", $"replay warm-up: {warmupConnections} resumes of a {WarmupMessages:N0}-message room per side, in turns", warmup.Elapsed.TotalMilliseconds, "ms");
            foreach (var (key, label) in Runs)
            {
                var s = spent[key];
                report.Add($"warm-up, {label}: {warmupConnections} × {WarmupMessages:N0} messages",
                    $"{s.Elapsed.TotalMilliseconds:N0} ms, {s.Received:N0} messages; CPU per message: worker {PerMessage(s.WorkerCpu, s.Received)}");
            }
        }

        // Then full-size rounds, in turns, not counted: the short resumes warm the worker, but this process's own code reads
        // a long replay (the bare consumer most: it is the whole consumer) at 7 µs of CPU per message in its first full
        // rounds against 1.5 µs from the fourth, measured; a median of paired rounds would count a cold baseline's rounds.
        for (var round = 1; round <= warmupRounds; round++)
        {
            foreach (var (key, label) in Runs)
            {
                ctx.Status = $"warm-up round {round}/{warmupRounds}: {label}";
                var (received, elapsed, _, _, clientCpu, _) = await ReplayAsync(key, ReplayRoom, replayMessages);
                report.Add($"warm-up round {round} (not counted), {label}",
                    $"{received / elapsed.TotalSeconds:N0} msg/s; CPU per message: client {PerMessage(clientCpu, received)}");
            }
        }

        ctx.BeginMeasure();
        // Each side's rate in every round, in round order (0 for a round that lost or doubled messages).
        var rates = Runs.ToDictionary(r => r.Key, _ => new List<double>(rounds));
        // Each side's machine time over its measured rounds, and the messages they read.
        var machines = Runs.ToDictionary(r => r.Key, _ => (Stat: (MachineStat?)new MachineStat(), Received: 0L));
        var runs = Runs;
        for (var round = 1; round <= rounds; round++)
        {
            // The sides' order turns each round (bare first in round 1, second in round 2, ...): no side always follows
            // the same one (whose garbage, or teardown in the worker, could land in it), and each side starts rounds alike.
            foreach (var (key, label) in runs.Skip((round - 1) % runs.Length).Concat(runs.Take((round - 1) % runs.Length)))
            {
                ctx.Status = $"replay {round}/{rounds}: {label}";
                // Every side starts on a settled load generator and worker: this process's garbage of the side before is
                // collected now, not inside the timed replay, and the worker gets a moment to finish the one before.
                GC.Collect();
                GC.WaitForPendingFinalizers();
                await Task.Delay(100, cancellationToken);
                var (received, elapsed, workerCpu, natsCpu, clientCpu, machine) = await ReplayAsync(key, ReplayRoom, replayMessages);
                rates[key].Add(received == replayMessages ? received / elapsed.TotalSeconds : 0);
                machines[key] = (machines[key].Stat + machine, machines[key].Received + received);
                report.Add(
                    $"replay {round}, {label}: {received:N0} messages",
                    $"{elapsed.TotalMilliseconds:N0} ms, {received / elapsed.TotalSeconds:N0} msg/s; CPU per message: worker {PerMessage(workerCpu, received)}, nats-server {PerMessage(natsCpu, received)}, client {PerMessage(clientCpu, received)}"
                    + (machine is { } m ? $"; machine: {m.Describe(received)}" : ""));
            }
        }

        report.Metric("replay_missing", "replay: backlog messages missing or extra, every run", missing);
        var bare = rates["bare"];
        foreach (var (key, label) in Runs)
        {
            report.Metric($"replay_{key}_rate", $"replay rate, {label} (best of {rounds})", rates[key].Max(), "msg/s");
            if (machines[key] is { Stat: { } stat, Received: var read })
            {
                report.Add($"machine during the replays, {label}, {rounds} rounds", stat.Describe(read));
            }

            report.Metric($"replay_{key}_first_rate", $"replay rate, {label} (round 1, after {warmupConnections} warm-up resumes and {warmupRounds} warm-up rounds)", rates[key][0], "msg/s");
            if (key != "bare")
            {
                // The goal reads the paired rounds (below); the ratio of the best rounds stays in the report.
                var paired = RoundMedian.PairedRatios(rates[key], bare);
                report.Add($"replay ÷ bare, {label}, each round", string.Join(", ", paired.Select(r => $"{r:0.00}×")));
                report.Add($"replay ÷ bare, {label}, best round ÷ best bare round", $"{rates[key].Max() / bare.Max():0.00}×");
                report.Metric($"replay_{key}_ratio", $"replay ÷ bare, {label}, {RoundMedian.Basis(paired.Count)}", RoundMedian.Of(paired), "×");
            }
        }

        // The main goals read what the clients use by default (Bridge.Client, clients/js: the batch subprotocols); the
        // plain subprotocols keep goals of their own (older clients, batches off), with the same bound.
        foreach (var (key, goal) in new[]
                 {
                     ("json-batch", Goals.ReplayJson), ("msgpack-batch", Goals.ReplayMessagePack), ("json", Goals.ReplayJsonPlain),
                     ("msgpack", Goals.ReplayMessagePackPlain), ("sse", Goals.ReplaySse),
                 })
        {
            if (rates.TryGetValue(key, out var rate))
            {
                var paired = RoundMedian.PairedRatios(rate, bare);
                ctx.Goal(goal, RoundMedian.Of(paired), RoundMedian.Basis(paired.Count));
            }
        }

        // 2. A dashboard resumes many rooms in one message: with a backlog in each, then with nothing missed.
        var rooms = Enumerable.Range(0, dashboardRooms).Select(i => $"bench.dash{i}").ToArray();
        await PublishAsync(rooms.SelectMany(r => Enumerable.Repeat($"rooms.{r}", perRoom)));
        foreach (var (label, since) in new[] { ("backlog", "0"), ("caught up", "LAST") })
        {
            await using var client = await LoadClient.ConnectAsync(worker.WebSocketUrl, new LoadClientOptions(), cancellationToken);
            var entries = new StringBuilder();
            foreach (var room in rooms)
            {
                var position = since == "LAST" ? await LastSeqAsync(js, room, cancellationToken) : 0UL;
                entries.Append(entries.Length > 0 ? "," : "").Append($$"""{"room":"{{room}}","since":{{position}}}""");
            }

            var sw = Stopwatch.StartNew();
            await client.SendAsync("{\"type\":\"room.join\",\"payload\":{\"rooms\":[" + entries + "]}}", cancellationToken);
            await WaitAsync(() => client.Joined >= dashboardRooms, cancellationToken);
            var elapsed = sw.Elapsed;
            var expected = since == "LAST" ? 0 : (long)dashboardRooms * perRoom;
            report.Metric(label == "backlog" ? "dashboard_backlog_ms" : "dashboard_caught_up_ms", $"dashboard ({label}): {dashboardRooms} rooms resumed in one room.join", elapsed.TotalMilliseconds, "ms");
            report.Add($"dashboard ({label}): messages replayed", client.Messages.ToString("N0"));
            report.Metric(label == "backlog" ? "dashboard_backlog_wrong" : "dashboard_caught_up_wrong", $"dashboard ({label}): |replayed − missed| (must be 0)", Math.Abs(client.Messages - expected));
            ctx.Stats.Add(expected: expected, delivered: Math.Min(client.Messages, expected));
        }

        ctx.EndMeasure();
        ctx.Stats.Lost = ctx.Stats.Expected - ctx.Stats.Delivered;
    }

    private const string ReplayRoom = "bench.replay";

    /// <summary>The warm-up's room: separate from the measured one, small, so warming costs seconds, not minutes.</summary>
    private const string WarmupRoom = "bench.replay-warmup";

    private const int WarmupMessages = 1000;

    private static readonly (string Key, string Label)[] ReplayRuns =
    [
        ("bare", "bare NATS.Net ordered consumer"), ("json", "Bridge WebSocket JSON"), ("json-batch", "Bridge WebSocket JSON, batched (bridge.v1.json-batch)"),
        ("msgpack", "Bridge WebSocket MessagePack"), ("msgpack-batch", "Bridge WebSocket MessagePack, batched (bridge.v1.msgpack-batch)"), ("sse", "Bridge SSE"),
    ];

    private const string CompareSuffix = "-compared";

    /// <summary>A report-only side (<c>--directget-batches</c>): the room read by batch direct gets of this many, its key's suffix.</summary>
    private const string DirectGetKey = "bare-directget-";

    // The baseline always; the transports asked for (all by default); each also against the compared worker if given;
    // the direct-get probes asked for, after the baseline.
    private (string Key, string Label)[] Runs =>
    [
        .. ReplayRuns.Take(1),
        .. (directGetBatches ?? []).Select(b => b > 0
            ? (DirectGetKey + b.ToString(CultureInfo.InvariantCulture), $"bare NATS.Net batch direct gets of {b:N0} (report only)")
            : (DirectGetKey + "raw" + (-b).ToString(CultureInfo.InvariantCulture), $"batch direct gets of {-b:N0}, read from their bytes (report only)")),
        .. ReplayRuns.Skip(1).Where(r => transports is null || transports.Contains(r.Key))
            .SelectMany(r => compareWorker is null ? [r] : new[] { r, (r.Key + CompareSuffix, r.Label + " (compared build)") }),
    ];

    /// <summary>The baseline: a bare NATS.Net ordered consumer on the room's subject, from its creation to the last message.</summary>
    private static async Task<(long Received, TimeSpan Elapsed)> BareReplayAsync(NatsJSContext js, string room, int messages, CancellationToken cancellationToken)
    {
        var sw = Stopwatch.StartNew();
        var consumer = await js.CreateOrderedConsumerAsync("ROOMS", new NatsJSOrderedConsumerOpts { FilterSubjects = [$"rooms.{room}"] }, cancellationToken);
        long received = 0;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));
        await foreach (var _ in consumer.ConsumeAsync<byte[]>(cancellationToken: timeout.Token))
        {
            if (++received == messages)
            {
                break;
            }
        }

        return (received, sw.Elapsed);
    }

    /// <summary>
    /// A probe (report only, not a goal): the room read by batch direct gets (<c>$JS.API.DIRECT.GET.ROOMS</c> with
    /// <c>{"seq":S,"next_by_subj":subject,"batch":N}</c>, nats-server 2.11+), one request at a time, each from where the
    /// last ended, the next sent as soon as the last message of a full batch is in (before its end-of-batch status).
    /// Each reply is a <c>NatsMsg</c> with its headers, as the bare consumer's deliveries are.
    /// </summary>
    private static async Task<(long Received, TimeSpan Elapsed)> BareDirectGetReplayAsync(NatsConnection connection, string room, int messages, int batch, CancellationToken cancellationToken)
    {
        var sw = Stopwatch.StartNew();
        var subject = $"rooms.{room}";
        long received = 0;
        ulong next = 1;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));

        ValueTask<NatsSub<byte[]>> RequestAsync(ulong seq) => connection.CreateRequestSubAsync<byte[], byte[]>(
            "$JS.API.DIRECT.GET.ROOMS",
            Encoding.UTF8.GetBytes($$"""{"seq":{{seq}},"next_by_subj":"{{subject}}","batch":{{batch}}}"""),
            replyOpts: new NatsSubOpts
            {
                Timeout = TimeSpan.FromSeconds(30),
                StopOnEmptyMsg = false,
                ChannelOpts = new NatsSubChannelOpts { Capacity = batch + 2, FullMode = System.Threading.Channels.BoundedChannelFullMode.DropNewest },
            },
            cancellationToken: timeout.Token);

        var sub = await RequestAsync(next);
        while (received < messages)
        {
            NatsSub<byte[]>? following = null;
            var inBatch = 0;
            await foreach (var msg in sub.Msgs.ReadAllAsync(timeout.Token))
            {
                var code = msg.Headers?.Code ?? 0;
                if (code is not (0 or 200))
                {
                    break; // 204 EOB (or 404: nothing more)
                }

                received++;
                next = ulong.Parse(msg.Headers!["Nats-Sequence"][0]!, CultureInfo.InvariantCulture) + 1;
                if (++inBatch == batch && received < messages)
                {
                    following = await RequestAsync(next);
                }
            }

            await sub.DisposeAsync();
            if (following is null)
            {
                break;
            }

            sub = following;
        }

        return (received, sw.Elapsed);
    }

    /// <summary>The direct-get probe without <c>NatsMsg</c>: <see cref="DirectGetProbe"/>.</summary>
    private static async Task<(long Received, TimeSpan Elapsed)> RawDirectGetReplayAsync(NatsConnection connection, string room, int messages, int batch, CancellationToken cancellationToken)
    {
        var sw = Stopwatch.StartNew();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(120));
        var received = await DirectGetProbe.ReadAsync(connection, "ROOMS", $"rooms.{room}", messages, batch, timeout.Token);
        return (received, sw.Elapsed);
    }

    /// <summary>
    /// One real client of the worker resumes the room from <c>since: 0</c>: time from sending the join (WebSocket), or
    /// from the request (SSE: the resume is the request, <c>?lastEventId=0</c>), to <c>room.joined</c>, which follows
    /// the replayed messages on the connection.
    /// </summary>
    private static async Task<(long Received, TimeSpan Elapsed)> BridgeReplayAsync(WorkerProcess worker, string transport, string room, CancellationToken cancellationToken)
    {
        // Each side's time ends where its client sees the last of it (the bare consumer's loop, here room.joined in the
        // client's frame handler), not when a waiter polling for it wakes.
        if (transport == "sse")
        {
            var started = Stopwatch.GetTimestamp();
            var joined = new TaskCompletionSource<long>(TaskCreationOptions.RunContinuationsAsynchronously);
            long messages = 0;
            await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, new SseClientOptions
            {
                Rooms = room,
                LastEventId = "0",
                Token = BenchTokens.Default,
                OnEvent = (type, _) =>
                {
                    if (type.StartsWith("load."u8))
                    {
                        Interlocked.Increment(ref messages);
                    }
                    else if (type.SequenceEqual("room.joined"u8))
                    {
                        joined.TrySetResult(Stopwatch.GetTimestamp());
                    }
                },
            }, cancellationToken);
            var at = await joined.Task.WaitAsync(JoinTimeout, cancellationToken);
            return (Interlocked.Read(ref messages), Stopwatch.GetElapsedTime(started, at));
        }

        await using var client = await LoadClient.ConnectAsync(worker.WebSocketUrl, new LoadClientOptions
        {
            MessagePack = transport.StartsWith("msgpack", StringComparison.Ordinal),
            Batched = transport.EndsWith("-batch", StringComparison.Ordinal),
        }, cancellationToken);
        await client.FirstFrame;
        var sent = Stopwatch.GetTimestamp();
        await client.SendAsync($$$"""{"type":"room.join","room":"{{{room}}}","payload":{"since":0}}""", cancellationToken);
        var joinedAt = await client.FirstJoined.WaitAsync(JoinTimeout, cancellationToken);
        return (client.Messages, Stopwatch.GetElapsedTime(sent, joinedAt));
    }

    private static async Task<ulong> LastSeqAsync(NatsJSContext js, string room, CancellationToken cancellationToken)
    {
        var stream = await js.GetStreamAsync("ROOMS", cancellationToken: cancellationToken);
        var last = await stream.GetDirectAsync<byte[]>(new NATS.Client.JetStream.Models.StreamMsgGetRequest { LastBySubj = $"rooms.{room}" }, cancellationToken: cancellationToken);
        return ulong.Parse(last.Headers!["Nats-Sequence"].ToString());
    }

    private static readonly TimeSpan JoinTimeout = TimeSpan.FromSeconds(120);

    private static async Task WaitAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the scenario did not complete within 120 s");
            }

            await Task.Delay(2, cancellationToken);
        }
    }
}
