using System.Globalization;
using Bridge.Contracts;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using Bridge.Testing;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Issue 14's fan-out row: one room, <c>subscribers</c> clients, a saturating burst of <c>messages</c>, Bridge (JSON)
/// against nats-server's own WebSocket listener serving the stream's RePublish subject to as many NATS.Net clients
/// (over <c>ws://</c>), on the same nats-server in the same run. One backend (JetStream, 256 in flight) stores every
/// message in the stream, as a Bridge deployment's backend would; nats-server republishes it to <c>live.rooms.…</c>,
/// where the worker's room subscription and the peer's clients read it. Bridge's subscribers are in one room and the
/// peer's on another room's RePublish subject, so each burst reaches one side only; both stay connected, the sides
/// take turns <c>rounds</c> times after a warm-up turn, and each side's median delivered/s counts. With
/// <c>baselineWorker</c> (another build's <c>Bridge.Worker.dll</c>), a second worker on the same nats-server serves a
/// third room to as many JSON subscribers and takes its turns too: a before/after of the fan-out in one run.
/// </summary>
internal sealed class FanoutVsNatsScenario(ScenarioSpec spec, string configuration, int subscribers, int messages, int rounds, string? baselineWorker = null) : IScenario
{
    private const int BridgeRoom = 0;
    private const int PeerRoom = 1;
    private const int BaselineRoom = 2;

    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var target = new BridgeTarget(configuration, BridgeTransport.Json) { NatsWebSocket = true };
        await target.StartAsync(ctx);
        var webSocket = target.Nats.WebSocketUrl ?? throw new InvalidOperationException("nats-server reported no WebSocket listener");
        var republished = $"{NatsSubjects.DefaultLivePrefix}.{Rooms.Name(PeerRoom)}";
        var connected = new List<IAsyncDisposable>();
        WorkerProcess? baseline = null;
        try
        {
            ctx.Status = "connecting Bridge's subscribers";
            var bridge = await ctx.ConnectAsync((_, ct) => target.SubscribeAsync([BridgeRoom], ctx.Stats, ct), subscribers);
            connected.AddRange(bridge);
            ctx.Status = "connecting nats-server's WebSocket subscribers";
            var peer = await ctx.ConnectAsync((_, ct) => NatsWebSocketTarget.SubscribeAsync(webSocket, [republished], ctx.Stats, ct), subscribers);
            connected.AddRange(peer);
            var sides = new List<Side>
            {
                new(target.Name, BridgeRoom, bridge.Count),
                new("nats-server WebSocket, RePublish subject", PeerRoom, peer.Count),
            };
            if (baselineWorker is not null)
            {
                ctx.Status = "starting the baseline worker and connecting its subscribers";
                baseline = await WorkerProcess.StartDllAsync(target.Nats.Url, baselineWorker);
                ctx.Watch("baseline worker", baseline.Pid);
                var before = await ctx.ConnectAsync(
                    (_, ct) => BridgeTarget.SubscribeAsync(baseline.HttpUrl, baseline.WebSocketUrl, BridgeTransport.Json, [Rooms.Name(BaselineRoom)], BenchTokens.Default, ctx.Stats, ct),
                    subscribers);
                connected.AddRange(before);
                sides.Add(new("Bridge (JSON), baseline worker", BaselineRoom, before.Count));
            }

            ctx.Metric("subscribers", "subscribers per side (Bridge JSON; nats-server WebSocket)", sides.Min(s => s.Receivers));

            await using var publisher = await target.CreatePublisherAsync(ctx.Stats, ctx.Token);
            // Round 0 is not counted: the first bursts ran while tiered JIT was still at work (rates rose round by round).
            for (var round = 0; round <= rounds; round++)
            {
                foreach (var side in sides)
                {
                    ctx.Status = round == 0 ? $"{side.Name}, warm-up burst" : $"{side.Name}, burst {round} of {rounds}";
                    var result = await ctx.InjectAsync(
                        (_, ts) => publisher.PublishAsync(side.Room, LoadPayload.Create(ts, side.Next++, side.Room), ctx.Token),
                        side.Receivers,
                        () => publisher.FlushAsync(ctx.Token),
                        new LoadSimulation.Burst(messages));
                    side.Lost += result.Lost;
                    if (round > 0)
                    {
                        side.Rates.Add(result.DeliveredPerSecond);
                    }
                }
            }

            var (ours, theirs) = (sides[0].Median, sides[1].Median);
            ctx.Metric("bridge_delivered_per_s", $"Bridge (JSON): deliveries/s, {messages:N0}-message burst, median of {rounds}", ours, "msg/s");
            ctx.Metric("nats_ws_delivered_per_s", "nats-server's WebSocket listener on the RePublish subject: deliveries/s, median", theirs, "msg/s");
            ctx.Metric("nats_ws_lost", "nats-server WebSocket side: deliveries missing after the drain", sides[1].Lost);
            if (sides.Count > 2)
            {
                ctx.Metric("baseline_delivered_per_s", "Bridge (JSON), baseline worker (--baseline-worker): deliveries/s, median", sides[2].Median, "msg/s");
                ctx.Metric("baseline_lost", "baseline worker side: deliveries missing after the drain", sides[2].Lost);
                ctx.Metric("vs_baseline", "Bridge ÷ baseline worker (deliveries/s)", ours / sides[2].Median, "×");
            }

            ctx.Report.Add("bursts (deliveries/s each, in order)", string.Join("; ", sides.Select(s => $"{s.Name}: {string.Join(", ", s.Rates.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))}")));
            ctx.Goal(Goals.FanoutRePublish, ours / theirs);
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(connected.Select(c => c.DisposeAsync().AsTask()));
            if (baseline is not null)
            {
                await baseline.DisposeAsync();
            }
        }
    }

    /// <summary>One side: its room, how many receive each message, its own load sequence (rising across rounds), its rates.</summary>
    private sealed class Side(string name, int room, int receivers)
    {
        public string Name => name;

        public int Room => room;

        public int Receivers => receivers;

        public long Next { get; set; }

        public long Lost { get; set; }

        public List<double> Rates { get; } = [];

        public double Median => Rates.Count == 0 ? double.NaN : Rates.Order().ElementAt(Rates.Count / 2);
    }
}
