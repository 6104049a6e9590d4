using System.Globalization;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// One row of the goal table `make bench` prints (issue 14): a number measured in one run, usually Bridge ÷ a bare
/// baseline measured in the same run, and the bound it should meet. A scenario that measures in rounds reports the
/// median of its rounds (of each round's paired ratio where there is a baseline: <see cref="RoundMedian"/>). Unlike a <see cref="Threshold"/>, a missed goal
/// fails the run only when asked (<c>--fail-on-goals</c>).
/// </summary>
internal sealed record Goal(string Key, string Name, double Limit, bool AtLeast, string Unit = "×")
{
    public string Describe() => $"{(AtLeast ? "≥" : "≤")} {Limit.ToString("0.##", CultureInfo.InvariantCulture)}{(Unit == "×" ? "×" : " " + Unit)}";

    public bool IsMet(double measured) => !double.IsNaN(measured) && (AtLeast ? measured >= Limit : measured <= Limit);
}

/// <summary>
/// Every goal of the table, in its order. Adding a row is one line here, plus <c>ctx.Goal(Goals.X, value)</c> where a
/// scenario measures it. A goal no scenario of the run reported shows as "not measured".
/// </summary>
internal static class Goals
{
    public static readonly Goal Ingest = new("ingest", "ingest: Bridge WebSocket publishes acked/s ÷ the better bare NATS.Net JetStream publisher of the same round", 0.7, true);

    public static readonly Goal Fanout = new("fanout", "fan-out, 1 room × 200 subscribers, burst: Bridge (JSON) ÷ nats-server's WebSocket listener (core subject)", 1.0, true);

    public static readonly Goal FanoutRePublish = new("fanout-republish", "fan-out, 1 room × 200 subscribers, 1,000-message burst: Bridge (JSON) ÷ nats-server's WebSocket listener on the stream's RePublish subject (same server)", 1.0, true);

    // Issue 13 names no bound for it ("compared with the 1,000-message burst"): half the baseline is ours.
    public static readonly Goal Burst = new("burst", "bursts, 1 room × 200 subscribers: delivered/s of the largest burst (100,000) ÷ the 1,000-message burst's, nobody closed", 0.5, true);

    public static readonly Goal SlowConsumer = new("slow-consumer", "healthy members' p99 with 20 members lagging ÷ without (+5 ms each)", 1.5, false);

    // Issue 16 §4 names no bound. The two conversions of a ~64 B map are a small part of a message's path (WebSocket,
    // NATS publish and ack, live feed, send), so the bound is "no worse"; docs/benchmarks.md has the measured rounds.
    public static readonly Goal MessagePackPath = new("msgpack-path", "MessagePack publish → MessagePack receive: worker CPU per message, stored as sent ÷ stored as JSON (before issue 16)", 1.0, false);

    public static readonly Goal ReplayJson = new("replay-json", "replay, one room of 100,000: Bridge WebSocket JSON resume (join → room.joined; bridge.v1.json-batch, the clients' default) ÷ bare NATS.Net ordered consumer", 0.8, true);

    public static readonly Goal ReplayMessagePack = new("replay-msgpack", "replay, one room of 100,000: Bridge WebSocket MessagePack resume (bridge.v1.msgpack-batch, the clients' default) ÷ bare NATS.Net ordered consumer", 0.8, true);

    // The plain subprotocols, one envelope per message: every older client and every client with batches off. Same bound.
    public static readonly Goal ReplayJsonPlain = new("replay-json-plain", "replay, one room of 100,000: Bridge WebSocket JSON resume, plain bridge.v1.json (older clients, batches off) ÷ bare NATS.Net ordered consumer", 0.8, true);

    public static readonly Goal ReplayMessagePackPlain = new("replay-msgpack-plain", "replay, one room of 100,000: Bridge WebSocket MessagePack resume, plain bridge.v1.msgpack (older clients, batches off) ÷ bare NATS.Net ordered consumer", 0.8, true);

    public static readonly Goal ReplaySse = new("replay-sse", "replay, one room of 100,000: Bridge SSE resume (request → room.joined) ÷ bare NATS.Net ordered consumer", 0.8, true);

    public static readonly Goal ActivationTime = new("activation-time", "activation, 100,000 rooms over 100 connections rejoining as the clients do after a deploy (batch room.join of 1,000): time until every room.joined", 2, false, "s");

    public static readonly Goal ActivationServerGrowth = new("activation-nats", "activation, 100,000 rooms: nats-server RSS growth", 100, false, "MB");

    public static readonly Goal RoomMemory = new("room-memory", "worker memory per active room at 100,000 rooms (RSS growth over the joins ÷ rooms)", 1, false, "KB");

    // Issue 16 names no bounds: a pattern join must not be slower than the single joins it replaces, and holds one
    // subscription whatever the number of devices.
    public static readonly Goal DashboardFirstScreen = new("dashboard-first-screen", "dashboard, N device rooms with latest: time to the first full screen, pattern join ÷ N single joins", 1.0, false);

    public static readonly Goal DashboardDelivery = new("dashboard-delivery", "dashboard, readings spread over the devices: delivered/s, pattern join ÷ N single joins", 0.9, true);

    public static readonly Goal DashboardSubscriptions = new("dashboard-subscriptions", "dashboard: the worker's nats-server subscriptions for a pattern join of N devices", 1, false, "subscriptions");

    // Issue 16 §3 names no bounds; ours, defined so they mean the same when the screens cannot read all they are sent
    // (docs/benchmarks.md, issue 16). Bytes: what a conflated screen is sent per published update ÷ what an
    // unconflated one is owed per update (one message each, at the unconflated phase's bytes per message), not ÷ what
    // an unconflated screen managed to read. Conflation to 4/s of 50/s owes about 12 times less; a third is a loose
    // bound that still fails if conflation stops working.
    public static readonly Goal ScreensBytes = new("screens-bytes", "trading screens: bytes sent to a screen per published update with maxRate ÷ unconflated demand (one message per update)", 0.33, false);

    public static readonly Goal ScreensCpu = new("screens-cpu", "trading screens: worker CPU per published update with maxRate ÷ unconflated", 0.75, false);

    // What conflation is for: the prices a screen shows are fresh, however many it can read.
    public static readonly Goal ScreensFresh = new("screens-fresh", "trading screens with maxRate: p99 age of the values received in the last third of the window", 1000, false, "ms");

    public static IReadOnlyList<Goal> All { get; } =
    [
        Ingest, Fanout, FanoutRePublish, Burst, SlowConsumer, ReplayJson, ReplayMessagePack, ReplayJsonPlain, ReplayMessagePackPlain, ReplaySse, ActivationTime, ActivationServerGrowth, RoomMemory,
        MessagePackPath, DashboardFirstScreen, DashboardDelivery, DashboardSubscriptions, ScreensBytes, ScreensCpu, ScreensFresh,
    ];
}
