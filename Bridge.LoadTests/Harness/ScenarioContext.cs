using System.Diagnostics;
using System.Net.WebSockets;
using System.Text.RegularExpressions;
using Bridge.LoadTests.Infrastructure;
using HdrHistogram;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// What a running scenario works with: its spec, the stats, the sampled processes, the report rows, a token that
/// fires at the spec's hard limit, and the harness's implementations of the load simulations.
/// </summary>
internal sealed partial class ScenarioContext : IDisposable
{
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private int _connections;

    public ScenarioContext(ScenarioSpec spec, CancellationToken token)
    {
        Spec = spec;
        Token = token;
        Report = new Report(spec.Name, spec.Command);
    }

    public ScenarioSpec Spec { get; }

    public CancellationToken Token { get; }

    public ScenarioStats Stats { get; } = new();

    public ProcessSampler Processes { get; } = new();

    public Report Report { get; }

    /// <summary>setup, warm-up, measuring, drain, done: shown in the live progress.</summary>
    public string Phase { get; set; } = "setup";

    /// <summary>Free text shown in the live progress (what the scenario is doing now).</summary>
    public string Status { get; set; } = "";

    public TimeSpan Elapsed => _clock.Elapsed;

    public int Connections => Volatile.Read(ref _connections);

    public void ConnectionOpened() => Interlocked.Increment(ref _connections);

    public void ConnectionClosed() => Interlocked.Decrement(ref _connections);

    public void Watch(string name, int pid) => Processes.Watch(name, pid);

    public void Unwatch(int pid) => Processes.Unwatch(pid);

    /// <summary>A number thresholds can refer to by <paramref name="key"/>, also shown in the report.</summary>
    public void Metric(string key, string label, double value, string unit = "") => Report.Metric(key, label, value, unit);

    /// <summary>
    /// A measured value of one of <see cref="Goals"/>: shown in the report and in the run's goal table;
    /// <paramref name="basis"/> says how it was read from several samples (<see cref="RoundMedian.Basis"/>).
    /// </summary>
    public void Goal(Goal goal, double measured, string? basis = null) => Report.Goal(goal, measured, basis);

    /// <summary>
    /// Opens connections as the spec's connection simulation says: all at once in batches of 50
    /// (<see cref="LoadSimulation.KeepConstant"/>) or at a rate (<see cref="LoadSimulation.RampConnections"/>).
    /// A connection that fails counts as an error of its kind; the others go on.
    /// </summary>
    public async Task<List<T>> ConnectAsync<T>(Func<int, CancellationToken, Task<T>> connect, int? count = null) where T : class
    {
        var ramp = Spec.Find<LoadSimulation.RampConnections>();
        var target = count ?? ramp?.Target ?? Spec.Find<LoadSimulation.KeepConstant>()?.Connections
            ?? throw new InvalidOperationException($"{Spec.Name} declares no connection simulation");
        var opened = new T?[target];

        async ValueTask OpenAsync(long i)
        {
            try
            {
                opened[i] = await connect((int)i, Token);
                ConnectionOpened();
            }
            catch (Exception ex) when (!Token.IsCancellationRequested)
            {
                Stats.Error("connect: " + Classify(ex));
            }
        }

        Status = $"connecting {target:N0}";
        if (ramp is not null && count is null)
        {
            var pending = new List<Task>();
            await Pace.RunAsync(ramp.PerSecond, TimeSpan.FromHours(1), i =>
            {
                pending.Add(OpenAsync(i).AsTask());
                return ValueTask.CompletedTask;
            }, Token, target);
            await Task.WhenAll(pending);
        }
        else
        {
            for (var i = 0; i < target; i += 50)
            {
                await Task.WhenAll(Enumerable.Range(i, Math.Min(50, target - i)).Select(j => OpenAsync(j).AsTask()));
            }
        }

        Status = "";
        return [.. opened.Where(c => c is not null).Select(c => c!)];
    }

    /// <summary>
    /// Runs the spec's message simulation: warm-up (not counted), then the measured window, then waits up to
    /// <see cref="ScenarioSpec.Drain"/> for deliveries to catch up; what is still missing is lost.
    /// <paramref name="publish"/> gets the message number and its publish timestamp; each message should reach
    /// <paramref name="receivers"/> receivers.
    /// </summary>
    public async Task<PhaseResult> InjectAsync(Func<long, long, ValueTask> publish, int receivers, Func<Task>? flush = null, LoadSimulation? messages = null)
    {
        long n = 0;
        var deliveredBefore = Stats.Delivered;
        var expectedBefore = Stats.Expected;
        async ValueTask PublishOne()
        {
            var ts = Stopwatch.GetTimestamp();
            Stats.OnSent(ts, receivers);
            try
            {
                await publish(n++, ts);
            }
            catch (Exception ex) when (!Token.IsCancellationRequested)
            {
                Stats.Error("publish: " + Classify(ex));
            }
        }

        var rate = messages as LoadSimulation.InjectAtRate ?? (messages is null ? Spec.Find<LoadSimulation.InjectAtRate>() : null);
        var burst = messages as LoadSimulation.Burst ?? (messages is null ? Spec.Find<LoadSimulation.Burst>() : null);
        Phase = "warm-up";
        if (rate is not null)
        {
            await Pace.RunAsync(rate.PerSecond, Spec.WarmUp, _ => PublishOne(), Token);
            BeginMeasure();
            await Pace.RunAsync(rate.PerSecond, Spec.Duration, _ => PublishOne(), Token);
        }
        else if (burst is not null)
        {
            // Warm-up: a tenth of the burst (JIT, pools, TCP windows), then let it drain.
            var warm = Stopwatch.StartNew();
            for (var i = 0; i < Math.Max(1, burst.Messages / 10) && warm.Elapsed < Spec.WarmUp; i++)
            {
                await PublishOne();
            }

            if (flush is not null)
            {
                await flush();
            }

            var left = Spec.WarmUp - warm.Elapsed;
            await Task.Delay(left > TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200), Token);
            BeginMeasure();
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < burst.Messages && sw.Elapsed < Spec.Duration; i++)
            {
                await PublishOne();
            }
        }
        else
        {
            throw new InvalidOperationException($"{Spec.Name} declares no message simulation");
        }

        if (flush is not null)
        {
            await flush();
        }

        EndMeasure();
        await DrainAsync();
        var delivered = Stats.Delivered - deliveredBefore;
        var window = Stats.LastDeliveryTs > Stats.MeasureStartTs ? Stopwatch.GetElapsedTime(Stats.MeasureStartTs, Math.Max(Stats.LastDeliveryTs, Stats.MeasureEndTs)) : TimeSpan.Zero;
        return new PhaseResult(
            delivered,
            window > TimeSpan.Zero ? delivered / window.TotalSeconds : 0,
            Stats.Latency.TotalCount > 0 ? Stats.Latency.GetValueAtPercentile(50) / 1000.0 : double.NaN,
            Stats.Latency.TotalCount > 0 ? Stats.Latency.GetValueAtPercentile(99) / 1000.0 : double.NaN,
            Math.Max(0, Stats.Expected - expectedBefore - delivered));
    }

    public void BeginMeasure()
    {
        Phase = "measuring";
        Stats.BeginMeasure();
        Processes.MarkMeasureStart();
    }

    public void EndMeasure()
    {
        Stats.EndMeasure();
        Processes.MarkMeasureEnd();
    }

    /// <summary>Waits until every expected delivery arrived or the drain time is up; the rest is lost.</summary>
    public async Task DrainAsync()
    {
        Phase = "drain";
        var deadline = Stopwatch.StartNew();
        while (Stats.Delivered < Stats.Expected && deadline.Elapsed < Spec.Drain)
        {
            await Task.Delay(10, Token);
        }

        Stats.Lost = Math.Max(0, Stats.Expected - Stats.Delivered);
    }

    /// <summary>A short, stable name for an error kind: an HTTP status, a close code, or the exception type.</summary>
    public static string Classify(Exception ex)
    {
        if (ex is WebSocketException or HttpRequestException && StatusCode().Match(ex.Message) is { Success: true } m)
        {
            return m.Groups[1].Value;
        }

        if (ex is HttpRequestException { StatusCode: { } status })
        {
            return ((int)status).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        return ex is AggregateException { InnerException: { } inner } ? Classify(inner) : ex.GetType().Name;
    }

    [GeneratedRegex(@"status code '(\d{3})'")]
    private static partial Regex StatusCode();

    /// <summary>The standard rows, then the thresholds; returns the finished report.</summary>
    public Report Complete(bool aborted)
    {
        Phase = "done";
        var r = Report;
        r.Elapsed = Elapsed;
        var s = Stats;
        r.Add("load", string.Join("; ", Spec.Load.Select(l => l.ToString())) is { Length: > 0 } load ? load : "custom (see rows)");
        if (s.Sent > 0 || s.Delivered > 0 || s.Expected > 0)
        {
            r.Add("warm-up (not counted) / measured", $"{Spec.WarmUp.TotalSeconds:N1} s / {Spec.Duration.TotalSeconds:N1} s");
            r.Metric("sent", "messages sent (measured)", s.Sent);
            r.Metric("expected", "deliveries expected", s.Expected);
            r.Metric("delivered", "delivered", s.Delivered);
            if (s.MeasureStartTs != long.MaxValue && s.LastDeliveryTs > s.MeasureStartTs)
            {
                var window = Stopwatch.GetElapsedTime(s.MeasureStartTs, Math.Max(s.LastDeliveryTs, Math.Min(s.MeasureEndTs, Stopwatch.GetTimestamp())));
                r.Metric("delivered_per_s", "delivered/s", s.Delivered / window.TotalSeconds, "msg/s");
            }

            if (s.Latency.TotalCount > 0)
            {
                foreach (var (key, p) in new[] { ("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99_9", 99.9) })
                {
                    r.Metric($"latency_{key}_ms", $"latency {key.Replace('_', '.')} (publish → receive)", s.Latency.GetValueAtPercentile(p) / 1000.0, "ms");
                }

                r.Metric("latency_max_ms", "latency max", s.Latency.GetMaxValue() / 1000.0, "ms");
            }

            r.Metric("lost", "lost", s.Lost);
            r.Metric("duplicated", "duplicated", s.Duplicated);
            r.Metric("gaps", "sequence gaps seen by receivers", s.Gaps);
        }

        r.Metric("errors", "errors", s.ErrorCount);
        foreach (var (kind, count) in s.Errors.OrderBy(e => e.Key, StringComparer.Ordinal))
        {
            r.Add($"errors: {kind}", count.ToString("N0", System.Globalization.CultureInfo.InvariantCulture));
        }

        foreach (var p in Processes.Processes)
        {
            if (p.MeasuredCpuPercent is { } cpu)
            {
                r.Metric($"{p.Name}_cpu_pct", $"{p.Name} CPU (measured window)", cpu, "% of one core");
            }

            r.Metric($"{p.Name}_rss_peak_mb", $"{p.Name} RSS peak", p.PeakRssBytes / 1048576.0, "MB");
            if (p.RssAtEnd is { } end)
            {
                r.Add($"{p.Name} RSS at end of measured window", end / 1048576.0, "MB");
            }
        }

        r.Check("scenario completed", !aborted, aborted ? "aborted (see errors)" : "yes");
        foreach (var t in Spec.Thresholds)
        {
            var (passed, measured) = t.Evaluate(r.Metrics);
            r.Check(t.Describe(), passed, measured);
        }

        return r;
    }

    public void Dispose() => Processes.Dispose();
}

/// <summary>One injection phase: deliveries, delivered/s over its measured window, latency, and what was lost.</summary>
internal sealed record PhaseResult(long Delivered, double DeliveredPerSecond, double P50Ms, double P99Ms, long Lost);
