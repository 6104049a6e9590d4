using System.Diagnostics;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using HdrHistogram;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Trading screens (issue 16): <c>instruments</c> rooms each updated <c>perInstrument</c> times a second, watched by
/// <c>screens</c> connections that join the pattern <c>bench.*</c> with <c>latest</c>, unconflated and then with
/// <c>maxRate</c>, in the same run, each on a fresh worker of the same nats-server. For each phase: updates published a
/// second, messages and bytes a screen received a second, the age of the values received in the last third of the
/// window (steady state: receive time minus publish time, so a screen that falls behind shows old prices), and the
/// worker's CPU per published update. At full size the screens (the load generator, on the same cores) cannot read
/// all they are sent, so the goals compare what holds under saturation too (docs/benchmarks.md, issue 16): bytes per
/// published update against what the unconflated screens are owed, CPU per published update, and the conflated
/// values' age.
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

        var full = await PhaseAsync(ctx, target.Worker, publisher, "unconflated", """{"latest":true}""");
        await using var second = await WorkerProcess.StartAsync(target.Nats.Url, configuration);
        ctx.Watch("worker-2", second.Pid);
        var rate = maxRate.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var conflated = await PhaseAsync(ctx, second, publisher, "conflated", $$"""{"latest":true,"maxRate":{{rate}}}""");

        ctx.Metric("instruments", "instruments (rooms)", instruments);
        ctx.Metric("updates_per_s", "updates per second asked, all instruments", instruments * perInstrument, "msg/s");
        ctx.Metric("screens", "screens (connections joined to the pattern)", screens);
        var seconds = spec.Duration.TotalSeconds;
        foreach (var (name, p) in new[] { ("unconflated", full), ("conflated", conflated) })
        {
            ctx.Metric($"{name}_published_per_s", $"{name}: updates published a second (window)", p.Published / seconds, "msg/s");
            ctx.Metric($"{name}_messages_per_s_per_screen", $"{name}: messages a screen received a second (window)", p.WindowMessages / seconds / screens, "msg/s");
            ctx.Metric($"{name}_kb_per_s_per_screen", $"{name}: KB a screen received a second (window)", p.WindowBytes / seconds / screens / 1024.0, "KB/s");
            ctx.Metric($"{name}_mb_received", $"{name}: MB received by all screens (window and drain)", p.Bytes / 1048576.0, "MB");
            ctx.Metric($"{name}_messages", $"{name}: messages received by all screens (window and drain)", p.Messages);
            ctx.Metric($"{name}_age_p50_ms", $"{name}: p50 age of the values received in the window's last third (receive - publish)", p.AgeP50Ms, "ms");
            ctx.Metric($"{name}_age_p99_ms", $"{name}: p99 age of the values received in the window's last third", p.AgeP99Ms, "ms");
            ctx.Metric($"{name}_worker_cpu_us_per_update", $"{name}: worker CPU per published update (window)", p.Cpu.TotalMicroseconds / Math.Max(1, p.Published), "µs");
            ctx.Metric($"{name}_closed", $"{name}: screens closed by the worker", p.Closed);
        }

        // What an unconflated screen is owed per update: one message, at the bytes a message took in that phase.
        var owedPerUpdate = full.Messages > 0 ? full.Bytes / (double)full.Messages : double.NaN;
        var conflatedPerUpdate = conflated.Bytes / (double)Math.Max(1, conflated.Published) / screens;
        ctx.Metric("unconflated_owed_mb", "unconflated: MB the screens were owed (updates × screens × bytes per message)", full.Published * (double)screens * owedPerUpdate / 1048576.0, "MB");
        ctx.Goal(Goals.ScreensBytes, conflatedPerUpdate / owedPerUpdate);
        ctx.Goal(Goals.ScreensCpu, (conflated.Cpu / Math.Max(1, conflated.Published)) / (full.Cpu / Math.Max(1, full.Published)));
        ctx.Goal(Goals.ScreensFresh, conflated.AgeP99Ms);
    }

    private async Task<ScreensPhase> PhaseAsync(ScenarioContext ctx, WorkerProcess worker, IRoomPublisher publisher, string name, string args)
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
            var bytesBefore = clients.Sum(c => c.Bytes);
            var messagesBefore = clients.Sum(c => c.Messages);
            var cpuBefore = worker.CpuTime();

            ctx.Status = $"{name}: {instruments * perInstrument:N0} updates/s to {screens} screens";
            // Ages count from the window's last third: what a screen shows once it has run a while (steady state).
            var steady = Task.Delay(spec.Duration * 2 / 3, ctx.Token).ContinueWith(_ => age.Reset(), TaskScheduler.Default);
            var published = await PublishAsync(publisher, spec.Duration, ctx.Token);
            await steady;
            var windowBytes = clients.Sum(c => c.Bytes) - bytesBefore;
            var windowMessages = clients.Sum(c => c.Messages) - messagesBefore;
            var cpu = worker.CpuTime() - cpuBefore;
            var (p50, p99) = age.TotalCount > 0 ? (age.GetValueAtPercentile(50) / 1000.0, age.GetValueAtPercentile(99) / 1000.0) : (double.NaN, double.NaN);

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
                windowBytes,
                windowMessages,
                clients.Sum(c => c.Bytes) - bytesBefore,
                clients.Sum(c => c.Messages) - messagesBefore,
                cpu,
                p50,
                p99,
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

    /// <param name="Cpu">The worker's CPU time during the window (not the drain).</param>
    private sealed record ScreensPhase(
        long Published, long WindowBytes, long WindowMessages, long Bytes, long Messages, TimeSpan Cpu, double AgeP50Ms, double AgeP99Ms, int Closed);
}
