using System.Globalization;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Peers;
using static Bridge.LoadTests.Harness.LoadSimulation;

namespace Bridge.LoadTests.Scenarios;

/// <summary>Every scenario by name, built from its command-line options; and the suites that run several.</summary>
internal static class Catalog
{
    /// <summary><c>--rounds</c> of a scenario whose goals read a median over its rounds: at least 1.</summary>
    private static int Rounds(Args a, int fallback)
    {
        var rounds = a.Int("--rounds", fallback);
        return rounds >= 1 ? rounds : throw new ArgumentException($"--rounds must be at least 1, not {rounds}");
    }

    public static readonly string Usage = """
        usage: dotnet run --project Bridge.LoadTests -c Release -- <scenario | suite> [options]
        scenarios (each starts its own nats-server and worker on loopback):
          fanout         --connections 1000 --rate 20 --seconds 5 --p99-ms 250 [--msgpack]   WebSocket fan-out, 1 room
          fanout-burst   --connections 1000 --messages 200                                saturated fan-out
          sse-fanout     --connections 500 --rate 20 --seconds 5 --p99-ms 250             SSE fan-out, 1 room
          rooms          --rooms 100000 --connections 100 --messages 20000 --rounds 1 [--join-batch 1000] [--profile]   activation, server and
                         worker memory per room, delivery; --rounds: activations, each on a fresh nats-server and worker (the
                         goals read their median; bench runs 3); --join-batch: rooms per room.join frame (1,000 by default:
                         how both clients rejoin after a reconnect; 1 = one frame per room); --profile: the worker's growth
                         by owner and type (last round); [--worker DLL]: against another build's Bridge.Worker.dll (the
                         "before" of a before/after); --client-warmup N: first, discarded rounds of N rooms that warm
                         this process's client code, as the long-running clients of a deploy are (as many as --rooms at 100,000
                         and more, else 0; --client-warmup-rounds, 2, how many). Each measured round also runs the bare
                         floor: NATS.Net alone subscribing every room and reading its seam (multi_last), on a nats-server
                         of its own; rows "bare NATS.Net activation" and "activation ÷ bare NATS.Net activation"
          rooms-compare  --rooms 1000                                                     core subscriptions vs JetStream consumers
          resume         --messages 100000 --rounds 5 --rooms 500 --per-room 20 --warmup-connections 60 --warmup-rounds 3 [--transports json,json-batch,msgpack,msgpack-batch,sse]
                         [--compare-worker path/to/Bridge.Worker.dll]   replay rate of each transport vs a bare ordered
                         consumer, same server (and vs another build's worker), sides in turns (the goals: the median of
                         each round's transport ÷ bare of the same round); a dashboard resuming many rooms;
                         --warmup-connections: resumes of a 1,000-message room per side before round 1 (0: a cold worker);
                         --warmup-rounds 3: full-size rounds in turns, not counted (warm the load generator's readers);
                         --directget-batches 4096,raw4096: report-only sides reading the room by batch direct gets of
                         that many (as NatsMsg; raw: from their bytes), nats-server CPU per message beside the consumer's
          storm          --clients 200 --rate 50 --seconds 6                              every client drops and resumes elsewhere
          connect-storm  --connections 2000 --rate 200 --p99-ms 1000                      authenticated connects per second
          burst          --connections 200 --bursts 1000,2000,10000,100000 [--json | --sse] [--max-rss-growth-mb 512]
                         bursts larger than the send queue: nobody closed, nothing lost or doubled; delivered/s vs the first
          slow-consumer  --connections 200 --slow 20 --rate 50 --seconds 5 --max-ratio 1.5  healthy p99 with 20 members lagging
          idle           --connections 20000 --max-kb 64 [--join shared] [--profile] [--hold-seconds 0] [--baseline-worker DLL]
                         worker memory per idle WebSocket; --profile: gcdump + counters before/after, bytes by type;
                         --baseline-worker: another build's Bridge.Worker.dll measured first in the same run (before/after)
          cluster        --clients 9 --rooms 3 --rate 5 [--only worker-kill,nats-kill,rolling-restart,nats-cluster-restart]
                         failure tests on a local cluster (3 nats-server, 3 workers, nginx): lost/duplicated must be 0
          publish-path   --rooms 10000 --messages 20000                                   JetStream publish alone vs delivered/s over many rooms
          presence       --connections 200 --rooms-per-client 10                          cost of presence per join (on vs off, same run)
          ingest         --clients 20 --in-flight 50 --rooms 100 --messages 100000 --rounds 5 --warmup 10 [--baseline-worker DLL]
                         Bridge WebSocket publishes/s vs bare NATS.Net PublishAsync / PublishConcurrentAsync, sides in turns (the
                         goal: the median of each round's Bridge ÷ better bare of the same round); --baseline-worker: another build's Bridge.Worker.dll measured in the same rounds (before/after)
          fanout-vs-nats --subscribers 200 --messages 1000 --rounds 3 --warmup 1 [--baseline-worker DLL]
                         1 room, saturating burst: Bridge JSON vs nats-server's WebSocket listener on the stream's RePublish
                         subject, same server, sides in turns (each side's median); --baseline-worker: another build's
                         worker on the same server as a third side (before/after)
          msgpack-path   --publishers 4 --in-flight 50 --subscribers 1 --messages 20000 --rounds 3
                         MessagePack publish → receive: worker CPU per message, stored as JSON (before) vs as sent (after),
                         sides in turns (each side's median)
          dashboard      --devices 5000 --rate 5000 --seconds 5                            pattern join vs N single joins with latest (same run)
          screens        --instruments 1000 --per-instrument 50 --screens 200 --max-rate 4 --seconds 5
                         trading screens on a pattern: maxRate vs unconflated (bytes, worker CPU, value age; same run)
          fanout, fanout-burst and sse-fanout also take --target (below); fanout-burst also --msgpack
        suites:
          smoke          short runs of the main scenarios with breakage thresholds (make load-smoke, part of make test)
          bench          peers, then the scenarios above at full size, then the goal table (results/goals-bench.md)
                         [peers options] [--no-peers] [--fail-on-goals: exit non-zero when a goal is missed]
                         [--scenarios burst,resume,...: only these of the full-size scenarios]
          peers          Bridge JSON/msgpack vs SignalR + Redis vs raw NATS WebSocket (make bench)
                         --subscribers 200 --rate 100 --p99-bound-ms 100 --messages 1000 --idle 20000 --rooms 10000 --repeat 1 [--only bridge-json,nats]
        """ + "\n" + TargetOptions.Usage;

    /// <summary>The scenarios that can load a deployment named with <c>--target</c>; the others measure servers they start.</summary>
    public static readonly string[] TargetScenarios = ["fanout", "fanout-burst", "sse-fanout"];

    public static IScenario? Create(string name, Args a, string configuration)
    {
        var command = a.Line;
        if (a.Has("--target") && !TargetScenarios.Contains(name, StringComparer.Ordinal))
        {
            throw new ArgumentException($"--target works with {string.Join(", ", TargetScenarios)}; '{name}' measures servers it starts itself");
        }

        switch (name)
        {
            case "fanout":
                {
                    var msgpack = a.Has("--msgpack");
                    var connections = a.Int("--connections", 1000);
                    return new FanoutScenario(new ScenarioSpec(msgpack ? "fanout-msgpack" : "fanout", "WebSocket fan-out: one room, N subscribers, fixed rate")
                    {
                        WarmUp = a.Seconds("--warmup", 1),
                        Duration = a.Seconds("--seconds", 5),
                        Drain = a.Seconds("--drain", 15),
                        Load = [Connections(a, connections), new InjectAtRate(a.Int("--rate", 20))],
                        Thresholds = [Threshold.Zero("lost"), Threshold.Zero("duplicated"), Threshold.Zero("errors"), Threshold.AtMost("latency_p99_ms", a.Double("--p99-ms", 250), "ms"), .. Extra(a)],
                        Command = command,
                    }, Target(a, connections, configuration, msgpack ? BridgeTransport.MessagePack : BridgeTransport.Json));
                }

            case "fanout-vs-nats":
                return new FanoutVsNatsScenario(new ScenarioSpec("fanout-vs-nats", "fan-out burst: Bridge vs nats-server's WebSocket listener on the RePublish subject, same server, same run")
                {
                    WarmUp = a.Seconds("--warmup", 1),
                    Duration = TimeSpan.FromSeconds(60),
                    Drain = a.Seconds("--drain", 15),
                    MaxTime = TimeSpan.FromMinutes(6),
                    Thresholds = [Threshold.Zero("lost"), Threshold.Zero("duplicated")],
                    Command = command,
                }, configuration, a.Int("--subscribers", 200), a.Int("--messages", 1000), a.Int("--rounds", 3), a.String("--baseline-worker"));

            case "fanout-burst":
                {
                    var connections = a.Int("--connections", 1000);
                    return new FanoutScenario(new ScenarioSpec("fanout-burst", "WebSocket fan-out: one room, N subscribers, saturated")
                    {
                        WarmUp = a.Seconds("--warmup", 2),
                        Duration = TimeSpan.FromSeconds(60),
                        Drain = a.Seconds("--drain", 15),
                        Load = [Connections(a, connections), new Burst(a.Int("--messages", 200))],
                        Thresholds = [Threshold.Zero("lost"), Threshold.Zero("duplicated"), .. Extra(a)],
                        Command = command,
                    }, Target(a, connections, configuration, a.Has("--msgpack") ? BridgeTransport.MessagePack : BridgeTransport.Json));
                }

            case "sse-fanout":
                {
                    var connections = a.Int("--connections", 500);
                    return new FanoutScenario(new ScenarioSpec("sse-fanout", "SSE fan-out: one room, N event streams, fixed rate")
                    {
                        WarmUp = a.Seconds("--warmup", 1),
                        Duration = a.Seconds("--seconds", 5),
                        Drain = a.Seconds("--drain", 15),
                        Load = [Connections(a, connections), new InjectAtRate(a.Int("--rate", 20))],
                        Thresholds = [Threshold.Zero("lost"), Threshold.Zero("duplicated"), Threshold.Zero("errors"), Threshold.AtMost("latency_p99_ms", a.Double("--p99-ms", 250), "ms"), .. Extra(a)],
                        Command = command,
                    }, Target(a, connections, configuration, BridgeTransport.Sse));
                }

            case "rooms":
                {
                    // Issue 14's size by default (its goals are stated at 100,000 rooms over 100 connections).
                    var rooms = a.Int("--rooms", 100_000);
                    return new RoomActivationScenario(new ScenarioSpec("rooms", "many rooms on one worker: activation, memory, delivery")
                    {
                        // Each round (and the client warm-up) starts its own nats-server and worker: 3 minutes each at most.
                        MaxTime = TimeSpan.FromMinutes(3 * (Rounds(a, 1) + 1)),
                        WarmUp = TimeSpan.FromSeconds(1),
                        Duration = TimeSpan.FromSeconds(60),
                        Load = [new KeepConstant(a.Int("--connections", 100)), new Burst(a.Int("--messages", 20_000))],
                        Thresholds =
                        [
                            // Issue 2's bounds, for up to 10,000 rooms; beyond, issue 14's goals (Goals.Activation*) judge them.
                            .. rooms <= 10_000 ? [Threshold.AtMost("activation_ms", 2000, "ms"), Threshold.AtMost("nats_growth_mb", 50, "MB")] : Array.Empty<Threshold>(),
                        Threshold.AtLeast("extra_subscriptions", 0), Threshold.AtMost("extra_subscriptions", 8), Threshold.Zero("bare_missing_subscriptions"),
                        Threshold.Zero("lost"), Threshold.Zero("duplicated"), Threshold.Zero("closed_by_worker"),
                    ],
                        Command = command,
                    }, configuration, rooms, a.Has("--profile"), a.String("--worker"),
                        // The clients' own rejoin after a reconnect (a deploy): batch frames of up to 1,000 rooms (Bridge.Client, clients/js).
                        a.Int("--join-batch", 1000), Rounds(a, 1),
                        // At the goals' size the clients warm up first (two discarded rounds of as many rooms, each on a worker of its own).
                        a.Int("--client-warmup", rooms >= 100_000 ? rooms : 0), a.Int("--client-warmup-rounds", 2));
                }

            case "rooms-compare":
                return new RoomMechanismScenario(new ScenarioSpec("rooms-mechanism", "core subscriptions vs JetStream consumers per room") { Command = command }, a.Int("--rooms", 1000));

            case "resume":
                return new ResumeScenario(new ScenarioSpec("resume", "replay rate; a dashboard resuming many rooms in one join")
                {
                    Thresholds = [Threshold.Zero("replay_missing"), Threshold.Zero("dashboard_backlog_wrong"), Threshold.Zero("dashboard_caught_up_wrong"), Threshold.Zero("lost")],
                    Command = command,
                }, configuration, a.Int("--messages", 100_000), a.Int("--rooms", 500), a.Int("--per-room", 20), Rounds(a, 5),
                    a.String("--transports")?.Split(','), a.String("--compare-worker"), a.Int("--warmup-connections", 60),
                    a.Int("--warmup-rounds", 3),
                    a.String("--directget-batches")?.Split(',')
                        .Select(b => b.StartsWith("raw", StringComparison.Ordinal) ? -int.Parse(b[3..], CultureInfo.InvariantCulture) : int.Parse(b, CultureInfo.InvariantCulture)).ToList());

            case "storm":
                {
                    var seconds = a.Int("--seconds", 6);
                    return new ReconnectStormScenario(new ScenarioSpec("reconnect-storm", "every client drops and resumes on another worker at once")
                    {
                        WarmUp = TimeSpan.Zero,
                        Duration = TimeSpan.FromSeconds(seconds),
                        Thresholds = [Threshold.Zero("lost"), Threshold.Zero("duplicated")],
                        Command = command,
                    }, configuration, a.Int("--clients", 200), a.Int("--rate", 50), seconds);
                }

            case "connect-storm":
                return new ConnectionStormScenario(new ScenarioSpec("connect-storm", "authenticated connects per second")
                {
                    Load = [new RampConnections(a.Int("--rate", 200), a.Int("--connections", 2000))],
                    Thresholds = [Threshold.AtLeast("accepted_ratio", 1), Threshold.Zero("errors"), Threshold.Zero("foreign_token_accepted"), Threshold.AtMost("connect_p99_ms", a.Double("--p99-ms", 1000), "ms")],
                    Command = command,
                }, configuration);

            case "burst":
                {
                    var bursts = (a.String("--bursts") ?? "1000,2000,10000,100000").Split(',').Select(b => int.Parse(b, System.Globalization.CultureInfo.InvariantCulture)).ToArray();
                    var largest = bursts.Max();
                    var transport = a.Has("--sse") ? BridgeTransport.Sse : a.Has("--json") ? BridgeTransport.Json : BridgeTransport.MessagePack;
                    return new BurstScenario(new ScenarioSpec("burst", "bursts larger than the send queue: members behind read the stream, nobody is closed")
                    {
                        WarmUp = TimeSpan.FromSeconds(1),
                        // Bounds, not targets: publishing the largest burst, and its deliveries trailing it.
                        Duration = TimeSpan.FromMinutes(10),
                        Drain = a.Seconds("--drain-seconds", 600),
                        MaxTime = TimeSpan.FromMinutes(40),
                        Load = [new KeepConstant(a.Int("--connections", 200)), new Burst(largest)],
                        Thresholds =
                        [
                            .. bursts.SelectMany(b => new[]
                        {
                            Threshold.Zero(BurstScenario.Key("closed", b)), Threshold.Zero(BurstScenario.Key("lost", b)), Threshold.Zero(BurstScenario.Key("duplicated", b)),
                            Threshold.Zero(BurstScenario.Key("lagging_after", b)),
                        }),
                        Threshold.AtMost(BurstScenario.Key("rss_growth_mb", largest), a.Double("--max-rss-growth-mb", 512), "MB"),
                    ],
                        Command = command,
                    }, configuration, bursts, transport);
                }

            case "slow-consumer":
                return new SlowConsumerScenario(new ScenarioSpec("slow-consumer", "healthy clients' p99 with members lagging (reading slower than the room) mixed in")
                {
                    Duration = a.Seconds("--seconds", 5),
                    Load = [new KeepConstant(a.Int("--connections", 200)), new InjectAtRate(a.Int("--rate", 50))],
                    Thresholds =
                    [
                        Threshold.Zero("lost_a"), Threshold.Zero("lost_b"), Threshold.Zero("duplicated"), Threshold.Zero("slow_closed"),
                        Threshold.AtLeast("lagging_start_b", 1), Threshold.AtMost("p99_ratio", a.Double("--max-ratio", 1.5)),
                    ],
                    Command = command,
                }, configuration, a.Int("--slow", 20));

            case "idle":
                return new IdleConnectionsScenario(new ScenarioSpec("idle", "worker memory per idle WebSocket")
                {
                    Duration = a.Seconds("--settle-seconds", 3),
                    MaxTime = TimeSpan.FromMinutes(5) + a.Seconds("--hold-seconds", 0),
                    Load = [new KeepConstant(a.Int("--connections", 20_000))],
                    Thresholds = [Threshold.Zero("errors"), Threshold.Zero("closed_while_idle"), Threshold.AtMost("kb_per_connection", a.Double("--max-kb", 64), "KB")],
                    Command = command,
                },
                () => new BridgeTarget(configuration, BridgeTransport.Json),
                a.String("--join") == "shared" ? IdleJoin.Shared : IdleJoin.None,
                a.Has("--profile"),
                a.Seconds("--hold-seconds", 0),
                a.String("--baseline-worker") is { } idleBaseline ? () => new BridgeTarget(configuration, BridgeTransport.Json) { WorkerDll = idleBaseline } : null);

            case "publish-path":
                {
                    var messages = a.Int("--messages", 20_000);
                    return new PublishPathScenario(new ScenarioSpec("publish-path", "many rooms: JetStream publish alone vs delivered/s, same run")
                    {
                        WarmUp = TimeSpan.FromSeconds(2),
                        Duration = TimeSpan.FromSeconds(30),
                        MaxTime = TimeSpan.FromMinutes(4),
                        Load = [new KeepConstant(100), new Burst(messages)],
                        Thresholds = [Threshold.Zero("lost"), Threshold.Zero("duplicated")],
                        Command = command,
                    }, configuration, a.Int("--rooms", 10_000), messages);
                }

            case "ingest":
                {
                    var shape = new IngestShape(a.Int("--clients", 20), a.Int("--in-flight", 50), a.Int("--rooms", 100), a.Int("--messages", 100_000), Rounds(a, 5));
                    return new IngestScenario(new ScenarioSpec("ingest", "publishes taken per second: Bridge over WebSocket vs a bare NATS.Net publisher, same server, same run")
                    {
                        // Tiered JIT was still 12% of the worker's CPU 8 s into publishing on a loaded machine (scripts/profile-ingest.sh).
                        WarmUp = a.Seconds("--warmup", 10),
                        MaxTime = TimeSpan.FromMinutes(8),
                        Thresholds = [Threshold.Zero("publish_failed"), Threshold.Zero("errors")],
                        Command = command,
                    }, configuration, shape, a.String("--baseline-worker"));
                }

            case "msgpack-path":
                return new MessagePackPathScenario(new ScenarioSpec("msgpack-path", "MessagePack publish → MessagePack receive: worker CPU per message before (stored as JSON) vs after (stored as sent), same run")
                {
                    MaxTime = TimeSpan.FromMinutes(6),
                    Load = [new KeepConstant(a.Int("--subscribers", 1))],
                    Thresholds = [Threshold.Zero("failed_before"), Threshold.Zero("failed_after"), Threshold.Zero("gaps_seen"), Threshold.Zero("duplicates_seen"), Threshold.Zero("errors")],
                    Command = command,
                }, configuration, a.Int("--publishers", 4), a.Int("--in-flight", 50), a.Int("--messages", 20_000), a.Int("--rounds", 3));

            case "presence":
                {
                    var connections = a.Int("--connections", 200);
                    var perClient = a.Int("--rooms-per-client", 10);
                    return new PresenceCostScenario(new ScenarioSpec("presence", "cost of presence per join: rooms with it vs without, same users, same run")
                    {
                        Duration = TimeSpan.FromSeconds(1),
                        MaxTime = TimeSpan.FromMinutes(3),
                        Load = [new KeepConstant(connections)],
                        Thresholds = [Threshold.Zero("errors"), Threshold.AtLeast("answered", 2.0 * connections * perClient)],
                        Command = command,
                    }, configuration, perClient);
                }

            case "dashboard":
                return new DashboardScenario(new ScenarioSpec("dashboard", "a dashboard of many device rooms: one pattern join vs single joins, with latest, same run")
                {
                    Duration = a.Seconds("--seconds", 5),
                    Drain = a.Seconds("--drain", 30),
                    MaxTime = TimeSpan.FromMinutes(6),
                    Thresholds = [Threshold.Zero("single_missing"), Threshold.Zero("pattern_missing"), Threshold.AtMost("pattern_subscriptions", 1)],
                    Command = command,
                }, configuration, a.Int("--devices", 5000), a.Int("--rate", 5000));

            case "screens":
                return new ScreensScenario(new ScenarioSpec("screens", "trading screens on a pattern: conflated (maxRate) vs unconflated, same run")
                {
                    WarmUp = a.Seconds("--warmup", 1),
                    Duration = a.Seconds("--seconds", 5),
                    Drain = a.Seconds("--drain", 30),
                    MaxTime = TimeSpan.FromMinutes(6),
                    Thresholds = [Threshold.Zero("unconflated_closed"), Threshold.Zero("conflated_closed")],
                    Command = command,
                }, configuration, a.Int("--instruments", 1000), a.Int("--per-instrument", 50), a.Int("--screens", 200), a.Double("--max-rate", 4));

            default:
                return null;
        }
    }

    /// <summary>All connections at once (in batches), or <c>--ramp N</c> a second.</summary>
    private static LoadSimulation Connections(Args a, int connections) =>
        a.Has("--ramp") ? new RampConnections(a.Int("--ramp", 100), connections) : new KeepConstant(connections);

    /// <summary>The user's own thresholds (<c>--threshold</c>, repeatable), after the scenario's.</summary>
    private static IEnumerable<Threshold> Extra(Args a) => a.All("--threshold").Select(Threshold.Parse);

    /// <summary>The deployment named with <c>--target</c>, else a nats-server and worker of the scenario's own.</summary>
    private static Func<IFanoutTarget> Target(Args a, int connections, string configuration, BridgeTransport transport)
    {
        var remote = TargetOptions.From(a, connections);
        return remote is null ? () => new BridgeTarget(configuration, transport) : () => new RemoteTarget(remote, transport);
    }

    /// <summary>
    /// make load-smoke: every main scenario, small, in about a minute and a half, with thresholds that catch
    /// breakage (zero loss and duplicates, generous latency and memory bounds), not performance drift.
    /// </summary>
    public static IReadOnlyList<IScenario> Smoke(string configuration) =>
    [
        Create("rooms", new Args(["rooms", "--rooms", "2000", "--connections", "20", "--messages", "4000", "--join-batch", "1"]), configuration)!,
        Create("fanout", new Args(["fanout", "--connections", "100", "--rate", "20", "--seconds", "3", "--p99-ms", "500"]), configuration)!,
        Create("fanout", new Args(["fanout", "--msgpack", "--connections", "50", "--rate", "20", "--seconds", "2", "--p99-ms", "500"]), configuration)!,
        Create("sse-fanout", new Args(["sse-fanout", "--connections", "50", "--rate", "20", "--seconds", "3", "--p99-ms", "500"]), configuration)!,
        Create("resume", new Args(["resume", "--messages", "2000", "--rounds", "1", "--rooms", "100", "--per-room", "10", "--warmup-connections", "2", "--warmup-rounds", "0", "--directget-batches", "512,raw512"]), configuration)!,
        Create("storm", new Args(["storm", "--clients", "100", "--rate", "50", "--seconds", "5"]), configuration)!,
        Create("connect-storm", new Args(["connect-storm", "--connections", "300", "--rate", "150", "--p99-ms", "2000"]), configuration)!,
        Create("slow-consumer", new Args(["slow-consumer", "--connections", "50", "--slow", "5", "--rate", "50", "--seconds", "3", "--max-ratio", "5"]), configuration)!,
        Create("burst", new Args(["burst", "--connections", "100", "--bursts", "5000", "--drain-seconds", "90"]), configuration)!,
        Create("idle", new Args(["idle", "--connections", "1000", "--max-kb", "200"]), configuration)!,
        Create("presence", new Args(["presence", "--connections", "50", "--rooms-per-client", "5"]), configuration)!,
        Create("ingest", new Args(["ingest", "--clients", "4", "--in-flight", "20", "--rooms", "20", "--messages", "8000", "--rounds", "1", "--warmup", "1"]), configuration)!,
        Create("fanout-vs-nats", new Args(["fanout-vs-nats", "--subscribers", "50", "--messages", "200", "--rounds", "1"]), configuration)!,
        Create("msgpack-path", new Args(["msgpack-path", "--publishers", "2", "--messages", "2000", "--rounds", "1"]), configuration)!,
    ];

    /// <summary>What the bench runs beyond a scenario's defaults.</summary>
    private static readonly Dictionary<string, string[]> BenchArgs = new()
    {
        // One activation is one sample (a fresh worker and nats-server each): the goals read the median of three.
        ["rooms"] = ["--rounds", "3"],
    };

    private static readonly string[] BenchScenarios =
        ["rooms", "rooms-compare", "fanout", "fanout-burst", "burst", "sse-fanout", "resume", "storm", "connect-storm", "slow-consumer", "idle", "presence", "ingest", "fanout-vs-nats", "msgpack-path", "dashboard", "screens"];

    /// <summary>
    /// The scenarios at full size (docs/benchmarks.md); <paramref name="only"/>: a comma-separated subset of them
    /// (<c>--scenarios</c>), in the suite's order.
    /// </summary>
    /// <exception cref="ArgumentException">A name in <paramref name="only"/> is not a bench scenario.</exception>
    public static IReadOnlyList<IScenario> Bench(string configuration, string? only = null)
    {
        var names = BenchScenarios;
        if (only is not null)
        {
            var asked = only.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
            if (asked.FirstOrDefault(n => !BenchScenarios.Contains(n)) is { } unknown)
            {
                throw new ArgumentException($"--scenarios: '{unknown}' is not a bench scenario ({string.Join(", ", BenchScenarios)})");
            }

            names = [.. BenchScenarios.Where(asked.Contains)];
        }

        return [.. names.Select(n => Create(n, new Args([n, .. BenchArgs.GetValueOrDefault(n, [])]), configuration)!)];
    }
}
