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
        foreach (var (name, p) in new[] { ("unconflated", full), ("conflated", conflated) })
        {
            // Per second of the window as it really ran (publishing can outlast the seconds asked when it falls behind).
            var seconds = p.Window.TotalSeconds;
            ctx.Metric($"{name}_window_s", $"{name}: the window's length (asked: {spec.Duration.TotalSeconds:0.#} s)", seconds, "s");
            ctx.Metric($"{name}_published_per_s", $"{name}: updates published a second (window)", p.Published / seconds, "msg/s");
            ctx.Metric($"{name}_messages_per_s_per_screen", $"{name}: messages a screen received a second (window)", p.WindowMessages / seconds / screens, "msg/s");
            ctx.Metric($"{name}_early_per_s_per_screen", $"{name}: of them, values published before the window (a backlog read late)", p.Values.Early / seconds / screens, "msg/s");
            ctx.Metric($"{name}_kb_per_s_per_screen", $"{name}: KB a screen received a second (window)", p.WindowBytes / seconds / screens / 1024.0, "KB/s");
            ctx.Metric($"{name}_mb_received", $"{name}: MB received by all screens (window and drain)", p.Bytes / 1048576.0, "MB");
            ctx.Metric($"{name}_messages", $"{name}: messages received by all screens (window and drain)", p.Messages);
            ctx.Metric($"{name}_age_p50_ms", $"{name}: p50 age of the values received in the window's last third (receive - publish)", p.AgeP50Ms, "ms");
            ctx.Metric($"{name}_age_p99_ms", $"{name}: p99 age of the values received in the window's last third", p.AgeP99Ms, "ms");
            ctx.Metric($"{name}_worker_cpu_us_per_update", $"{name}: worker CPU per published update (window)", p.Cpu.TotalMicroseconds / Math.Max(1, p.Published), "µs");
            ctx.Metric($"{name}_closed", $"{name}: screens closed by the worker", p.Closed);
        }

        // The rate check: at most one value of an instrument per 1/maxRate on a screen (docs/protocol.md, maxRate).
        // Counted per screen and instrument over the window; spacing by receive or publish time is shown too, but a screen
        // that reads late, or a feed whose lag varies, brings values sent apart close together, so only counts judge the worker.
        var values = conflated.Values;
        ctx.Metric("conflated_allowed_per_s_per_screen", "conflated: values a screen may receive a second at maxRate (instruments × maxRate)", instruments * maxRate, "msg/s");
        ctx.Metric("conflated_most_of_one_instrument", $"conflated: most values of one instrument on one screen in the window (maxRate allows {values.Allowed})", values.MostOfOne);
        ctx.Metric("conflated_over_max_rate", "conflated: values beyond what maxRate allows one instrument on one screen in the window (all screens)", values.OverAllowed);
        ctx.Metric("conflated_closer_received", "conflated: values of one instrument received closer than 0.9/maxRate on one screen (includes the screen's read lag)", values.CloseReceived);
        ctx.Metric("conflated_closer_published", "conflated: values of one instrument published closer than 0.9/maxRate, as received by one screen (includes the feed's lag)", values.CloseSent);
        ctx.Metric("conflated_min_spacing_received_ms", "conflated: closest two values of one instrument on one screen, receive time", values.MinReceivedMs, "ms");
        ctx.Metric("conflated_min_spacing_published_ms", "conflated: closest two values of one instrument on one screen, publish time", values.MinSentMs, "ms");

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
        var values = new List<ScreenValues>();
        var clients = await ctx.ConnectAsync(
            (_, ct) =>
            {
                var screen = new ScreenValues(instruments, maxRate);
                lock (values)
                {
                    values.Add(screen);
                }

                return LoadClient.ConnectAsync(worker.WebSocketUrl, new LoadClientOptions { MessagePack = true, Latency = age, OnValue = screen.OnValue }, ct);
            },
            screens);
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
            var window = Stopwatch.StartNew();
            var windowStart = Stopwatch.GetTimestamp();
            values.ForEach(v => v.Start(windowStart));

            ctx.Status = $"{name}: {instruments * perInstrument:N0} updates/s to {screens} screens";
            // Ages count from the window's last third: what a screen shows once it has run a while (steady state).
            var steady = Task.Delay(spec.Duration * 2 / 3, ctx.Token).ContinueWith(_ => age.Reset(), TaskScheduler.Default);
            var published = await PublishAsync(publisher, spec.Duration, ctx.Token);
            await steady;
            var windowBytes = clients.Sum(c => c.Bytes) - bytesBefore;
            var windowMessages = clients.Sum(c => c.Messages) - messagesBefore;
            var cpu = worker.CpuTime() - cpuBefore;
            values.ForEach(v => v.Stop());
            window.Stop();
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
                window.Elapsed,
                windowBytes,
                windowMessages,
                ScreenValues.Sum(values, window.Elapsed),
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

    /// <summary>
    /// Every instrument <c>perInstrument</c> times a second, round-robin, over <paramref name="during"/>: every update
    /// asked is published, so both phases carry the same updates per instrument (what conflation is measured against);
    /// a publisher that falls behind catches up after the time, and the window (measured, not assumed) grows with it.
    /// Returns how many were published.
    /// </summary>
    private async Task<long> PublishAsync(IRoomPublisher publisher, TimeSpan during, CancellationToken ct)
    {
        var published = await Pace.RunAsync(instruments * perInstrument, during, n =>
            publisher.PublishAsync((int)(n % instruments), LoadPayload.Create(Stopwatch.GetTimestamp(), n / instruments, (int)(n % instruments)), ct), ct);
        await publisher.FlushAsync(ct);
        return published;
    }

    /// <param name="Window">How long the window really took: publishing and its flush can outlast the seconds asked when the publisher falls behind.</param>
    /// <param name="Values">What the screens received in the window, per instrument (<see cref="ScreenValues"/>).</param>
    /// <param name="Cpu">The worker's CPU time during the window (not the drain).</param>
    private sealed record ScreensPhase(
        long Published, TimeSpan Window, long WindowBytes, long WindowMessages, ScreenValues.Totals Values, long Bytes, long Messages, TimeSpan Cpu, double AgeP50Ms, double AgeP99Ms, int Closed);
}

/// <summary>
/// One screen's values per instrument while the window is counted, checked against <c>maxRate</c>: how many, how many
/// were published before the window (a backlog read late), and how close together two values of one instrument came,
/// by receive time and by publish time. Called on the screen's reader only (one thread); read after <see cref="Stop"/>.
/// </summary>
internal sealed class ScreenValues(int instruments, double maxRate)
{
    // Two values of one instrument closer than this (in Stopwatch ticks) break maxRate; 10% under 1/maxRate for jitter.
    private readonly long _closest = (long)(Stopwatch.Frequency / maxRate * 0.9);
    private readonly double _rate = maxRate;
    private readonly int[] _count = new int[instruments];
    private readonly long[] _lastReceived = new long[instruments];
    private readonly long[] _lastSent = new long[instruments];
    private long _start;
    private volatile bool _counting;
    private long _values, _early, _closeReceived, _closeSent;
    private long _minReceived = long.MaxValue, _minSent = long.MaxValue;

    public void Start(long at)
    {
        _start = at;
        _counting = true;
    }

    public void Stop() => _counting = false;

    public void OnValue(long sent, int instrument)
    {
        if (!_counting || (uint)instrument >= (uint)_count.Length)
        {
            return;
        }

        var now = Stopwatch.GetTimestamp();
        _values++;
        _count[instrument]++;
        if (sent < _start)
        {
            _early++;
        }

        if (_lastReceived[instrument] != 0)
        {
            var received = now - _lastReceived[instrument];
            var published = sent - _lastSent[instrument];
            _minReceived = Math.Min(_minReceived, received);
            _minSent = Math.Min(_minSent, published);
            _closeReceived += received < _closest ? 1 : 0;
            _closeSent += published < _closest ? 1 : 0;
        }

        _lastReceived[instrument] = now;
        _lastSent[instrument] = sent;
    }

    /// <summary>All screens' counts together.</summary>
    /// <param name="Values">Values received in the window.</param>
    /// <param name="Early">Of them, published before the window began.</param>
    /// <param name="Allowed">The most values of one instrument maxRate lets a screen receive in the window: one per interval begun, and one for a value already on its way when the window began.</param>
    /// <param name="MostOfOne">The most values of one instrument one screen received in the window.</param>
    /// <param name="OverAllowed">Values beyond <paramref name="Allowed"/>, summed over screens and instruments: the worker broke maxRate when above 0.</param>
    /// <param name="CloseReceived">Values received less than 0.9 / maxRate after the previous value of their instrument on their screen (a screen that reads late receives values sent apart close together).</param>
    /// <param name="CloseSent">Values published less than 0.9 / maxRate after the previous value of their instrument their screen received (the feed's lag varies too).</param>
    /// <param name="MinReceivedMs">The closest two values of one instrument came on one screen, by receive time.</param>
    /// <param name="MinSentMs">The same by publish time.</param>
    public sealed record Totals(long Values, long Early, long Allowed, int MostOfOne, long OverAllowed, long CloseReceived, long CloseSent, double MinReceivedMs, double MinSentMs);

    public static Totals Sum(IReadOnlyList<ScreenValues> screens, TimeSpan window)
    {
        static double Ms(long ticks) => ticks == long.MaxValue ? double.NaN : ticks * 1000.0 / Stopwatch.Frequency;
        var allowed = screens.Count == 0 ? 0 : (long)Math.Ceiling(window.TotalSeconds * screens[0]._rate) + 1;
        return new Totals(
            screens.Sum(s => s._values),
            screens.Sum(s => s._early),
            allowed,
            screens.Count == 0 ? 0 : screens.Max(s => s._count.Max()),
            screens.Sum(s => s._count.Sum(c => Math.Max(0, c - allowed))),
            screens.Sum(s => s._closeReceived),
            screens.Sum(s => s._closeSent),
            Ms(screens.Count == 0 ? long.MaxValue : screens.Min(s => s._minReceived)),
            Ms(screens.Count == 0 ? long.MaxValue : screens.Min(s => s._minSent)));
    }
}
