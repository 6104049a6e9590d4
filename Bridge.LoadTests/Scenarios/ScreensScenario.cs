using System.Diagnostics;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using HdrHistogram;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Trading screens (issue 16): <c>instruments</c> rooms each updated <c>perInstrument</c> times a second, watched by
/// <c>screens</c> connections that join the pattern <c>bench.*</c> with <c>latest</c>, unconflated and then with
/// <c>maxRate</c>, in the same run, each on a fresh worker of the same nats-server. For each: bytes the screens
/// received, the worker's CPU time for the window, and the p99 age of each delivered value (receive time minus publish
/// time: a screen that falls behind shows old prices). Goals: bytes and CPU conflated against unconflated.
/// </summary>
internal sealed class ScreensScenario(ScenarioSpec spec, string configuration, int instruments, int perInstrument, int screens, double maxRate) : IScenario
{
    private const string Pattern = "bench.*";

    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var target = new BridgeTarget(configuration, BridgeTransport.MessagePack);
        await target.StartAsync(ctx);
        await using var publisher = await target.CreatePublisherAsync(ctx.Stats, ctx.Token);

        var full = await PhaseAsync(ctx, target.Nats.Url, target.Worker, publisher, "unconflated", """{"latest":true}""");
        await using var second = await WorkerProcess.StartAsync(target.Nats.Url, configuration);
        ctx.Watch("worker-2", second.Pid);
        var rate = maxRate.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var conflated = await PhaseAsync(ctx, target.Nats.Url, second, publisher, "conflated", $$"""{"latest":true,"maxRate":{{rate}}}""");

        ctx.Metric("instruments", "instruments (rooms)", instruments);
        ctx.Metric("updates_per_s", "updates per second, all instruments", instruments * perInstrument, "msg/s");
        ctx.Metric("screens", "screens (connections joined to the pattern)", screens);
        foreach (var (name, p) in new[] { ("unconflated", full), ("conflated", conflated) })
        {
            ctx.Metric($"{name}_published", $"{name}: updates published in the window", p.Published);
            ctx.Metric($"{name}_mb_received", $"{name}: MB received by all screens", p.Bytes / 1048576.0, "MB");
            ctx.Metric($"{name}_messages", $"{name}: messages received by all screens", p.Messages);
            ctx.Metric($"{name}_worker_cpu_s", $"{name}: worker CPU time for publishing and delivery", p.Cpu.TotalSeconds, "s");
            ctx.Metric($"{name}_age_p99_ms", $"{name}: p99 of a delivered value's age (receive - publish)", p.AgeP99Ms, "ms");
            ctx.Metric($"{name}_closed", $"{name}: screens closed by the worker", p.Closed);
        }

        ctx.Goal(Goals.ScreensBytes, conflated.Bytes / (double)full.Bytes);
        ctx.Goal(Goals.ScreensCpu, conflated.Cpu / full.Cpu);
    }

    private async Task<ScreensPhase> PhaseAsync(ScenarioContext ctx, string natsUrl, WorkerProcess worker, IRoomPublisher publisher, string name, string args)
    {
        ctx.Phase = name;
        ctx.Status = $"{name}: {screens} screens join {Pattern}";
        var age = Latencies.Create();
        var clients = await ctx.ConnectAsync(
            (_, ct) => LoadClient.ConnectAsync(worker.WebSocketUrl, new LoadClientOptions { MessagePack = true, Latency = age }, ct), screens);
        try
        {
            await Task.WhenAll(clients.Select(c => c.SendAsync($$"""{"type":"room.join","room":"{{Pattern}}","payload":{{args}}}""", ctx.Token)));
            await Rooms.WaitAsync(() => clients.All(c => c.Joined >= 1), $"{name}: every screen joined", ctx.Token);

            // Warm-up (JIT, buffers), not counted.
            ctx.Status = $"{name}: warming up";
            await PublishAsync(publisher, spec.WarmUp, ctx.Token);
            await Task.Delay(500, ctx.Token);
            age.Reset();
            var bytesBefore = clients.Sum(c => c.Bytes);
            var messagesBefore = clients.Sum(c => c.Messages);
            var cpuBefore = worker.CpuTime();

            ctx.Status = $"{name}: {instruments * perInstrument:N0} updates/s to {screens} screens";
            var published = await PublishAsync(publisher, spec.Duration, ctx.Token);

            // Delivery trails the window: wait until the screens stop receiving (a conflated screen's last values come
            // one interval later; an unconflated one works through its backlog), at most the drain time.
            var drain = Stopwatch.StartNew();
            var last = -1L;
            while (drain.Elapsed < spec.Drain)
            {
                await Task.Delay(500, ctx.Token);
                var now = clients.Sum(c => c.Messages);
                if (now == last)
                {
                    break;
                }

                last = now;
            }

            return new ScreensPhase(
                published,
                clients.Sum(c => c.Bytes) - bytesBefore,
                clients.Sum(c => c.Messages) - messagesBefore,
                worker.CpuTime() - cpuBefore,
                age.TotalCount > 0 ? age.GetValueAtPercentile(99) / 1000.0 : double.NaN,
                clients.Count(c => c.CloseStatus is not null));
        }
        finally
        {
            ctx.Status = $"{name}: closing";
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
        }
    }

    /// <summary>Every instrument <c>perInstrument</c> times a second, round-robin; returns how many were published.</summary>
    private async Task<long> PublishAsync(IRoomPublisher publisher, TimeSpan during, CancellationToken ct)
    {
        var published = await Pace.RunAsync(instruments * perInstrument, during, n =>
            publisher.PublishAsync((int)(n % instruments), LoadPayload.Create(Stopwatch.GetTimestamp(), n / instruments, (int)(n % instruments)), ct), ct);
        await publisher.FlushAsync(ct);
        return published;
    }

    private sealed record ScreensPhase(long Published, long Bytes, long Messages, TimeSpan Cpu, double AgeP99Ms, int Closed);
}
