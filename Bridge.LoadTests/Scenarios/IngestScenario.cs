using System.Diagnostics;
using System.Globalization;
using System.Text;
using Bridge.Contracts;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// How fast the worker takes publishes, against the best a bare NATS.Net client does on the same nats-server in the
/// same run (issue 14's ingest row). Bridge: WebSocket clients (JSON) publishing 64 B bodies over many rooms, each
/// with a window of unanswered publishes, every one answered by <c>ack</c>. Bare: one NATS.Net connection publishing
/// the same bodies with the same headers and <c>Nats-Msg-Id</c> (so the stream does the same work), with
/// <c>PublishAsync</c> and a window of 256, and with <c>PublishConcurrentAsync</c>, futures awaited in batches.
/// </summary>
/// <remarks>
/// Each side is warmed up for <see cref="ScenarioSpec.WarmUp"/> first (the worker's tiered JIT settles in seconds:
/// measured too early, a third of its CPU went to the JIT), then the sides take turns, <c>rounds</c> times, so a
/// change in the machine's load touches all of them alike. The goal is the median over the rounds of Bridge's rate ÷
/// the better bare rate of the same round (<see cref="RoundMedian"/>); each side's median rate, and the ratio of the
/// medians, are report rows. With a baseline worker
/// (another checkout's build, <c>--baseline-worker</c>), it is measured in the same turns, on the same nats-server.
/// </remarks>
internal sealed class IngestScenario(ScenarioSpec spec, string configuration, IngestShape shape, string? baselineWorker) : IScenario
{
    private const int BareWindow = 256;
    private const int BareBatch = 1_000;

    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var target = new BridgeTarget(configuration, BridgeTransport.Json);
        await target.StartAsync(ctx);
        await using var bare = new NatsConnection(new NatsOpts { Url = target.Nats.Url, Name = "bare publisher" });
        await bare.ConnectAsync();
        var js = new NatsJSContext(bare);

        var sides = new List<Side>
        {
            new("bare NATS.Net PublishAsync", (run, count) => BarePublishAsync(js, run, count, ctx), target.Nats.Pid),
            new("bare NATS.Net PublishConcurrentAsync", (run, count) => BareConcurrentAsync(js, run, count, ctx), target.Nats.Pid),
        };
        var clients = new List<IngestClient>();
        WorkerProcess? baseline = null;
        try
        {
            var bridge = await ConnectAsync(target.Worker, target.Nats.Pid, "Bridge", "b", clients, ctx);
            sides.Add(bridge);
            Side? before = null;
            if (baselineWorker is not null)
            {
                ctx.Status = "starting the baseline worker";
                baseline = await WorkerProcess.StartDllAsync(target.Nats.Url, baselineWorker);
                ctx.Watch("baseline worker", baseline.Pid);
                before = await ConnectAsync(baseline, target.Nats.Pid, "Bridge, baseline worker", "base", clients, ctx);
                sides.Add(before);
            }

            ctx.Phase = "warm-up";
            foreach (var side in sides)
            {
                await side.WarmUpAsync(spec.WarmUp, shape.Messages, ctx);
            }

            ctx.Phase = "measuring";
            for (var round = 1; round <= shape.Rounds; round++)
            {
                // The sides' order turns each round, so that no side always follows the same one (its garbage, the
                // server's flushing of what it just stored) or always opens the round.
                var turn = (round - 1) % sides.Count;
                foreach (var side in sides.Skip(turn).Concat(sides.Take(turn)))
                {
                    ctx.Status = $"{side.Name}, round {round} of {shape.Rounds}";
                    await side.MeasureAsync($"r{round}", shape.Messages);
                }
            }

            var (publishAsync, concurrent) = (sides[0].Median, sides[1].Median);
            // Each round's better bare publisher, paired with Bridge's rate in that round.
            var bareRounds = sides[0].Rates.Zip(sides[1].Rates, Math.Max).ToList();
            ctx.Metric("bare_publish_async_per_s", $"bare NATS.Net PublishAsync, {BareWindow} in flight: msg/s", publishAsync, "msg/s");
            ctx.Metric("bare_publish_concurrent_per_s", $"bare NATS.Net PublishConcurrentAsync, awaited in batches of {BareBatch:N0}: msg/s", concurrent, "msg/s");
            ctx.Metric("bridge_ingest_per_s", $"Bridge: {shape.Clients} WebSocket clients × {shape.Window} in flight, {shape.Rooms} rooms, acked msg/s", bridge.Median, "msg/s");
            ctx.Metric("worker_cpu_us_per_publish", "Bridge: worker CPU per publish (all cores)", bridge.CpuPerMessage.Worker, "µs");
            if (before is not null)
            {
                ctx.Metric("baseline_ingest_per_s", "Bridge, baseline worker (--baseline-worker): acked msg/s", before.Median, "msg/s");
                ctx.Metric("baseline_cpu_us_per_publish", "Bridge, baseline worker: worker CPU per publish", before.CpuPerMessage.Worker, "µs");
                ctx.Metric("ingest_vs_baseline", "Bridge ÷ baseline worker", bridge.Median / before.Median, "×");
            }

            // On a machine whose cores are all busy, the rate follows the CPU every process spends per message.
            foreach (var side in sides)
            {
                var (load, nats, worker) = side.CpuPerMessage;
                ctx.Report.Add($"CPU per message, {side.Name}",
                    string.Create(CultureInfo.InvariantCulture, $"{load + nats + worker:N1} µs: load {load:N1}, nats-server {nats:N1}{(worker > 0 ? $", worker {worker:N1}" : "")}"));
            }

            ctx.Report.Add("rounds (msg/s each, in order)", string.Join("; ", sides.Select(s => $"{s.Name}: {string.Join(", ", s.Rates.Select(r => r.ToString("N0", CultureInfo.InvariantCulture)))}")));
            ctx.Metric("publish_failed", "Bridge: publishes answered publish_failed (or not answered)", clients.Sum(c => c.Failed));
            var paired = RoundMedian.PairedRatios(bridge.Rates, bareRounds);
            ctx.Report.Add("Bridge ÷ better bare publisher, each round", string.Join(", ", paired.Select(r => r.ToString("0.00", CultureInfo.InvariantCulture) + "×")));
            ctx.Metric("ingest_ratio_of_medians", "Bridge's median rate ÷ the better bare median rate", bridge.Median / Math.Max(publishAsync, concurrent), "×");
            ctx.Goal(Goals.Ingest, RoundMedian.Of(paired), RoundMedian.Basis(paired.Count));
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
            if (baseline is not null)
            {
                await baseline.DisposeAsync();
            }
        }
    }

    // Each side's message ids start with its own tag: the stream de-duplicates by id across the whole run.
    private async Task<Side> ConnectAsync(WorkerProcess worker, int natsPid, string name, string tag, List<IngestClient> all, ScenarioContext ctx)
    {
        var connections = await ctx.ConnectAsync((i, ct) => IngestClient.ConnectAsync(worker.WebSocketUrl, i, shape.Window, ct), shape.Clients);
        all.AddRange(connections);
        return new Side(name, (run, count) => BridgeAsync(connections, tag + "-" + run, count, ctx), natsPid, worker);
    }

    // The headers the worker stores with a WebSocket publish, and its de-duplication key.
    private static NatsHeaders Headers(string from, string id) => new()
    {
        [NatsSubjects.TypeHeader] = "load.ingest",
        [NatsSubjects.FromHeader] = from,
        [NatsSubjects.ContentTypeHeader] = NatsSubjects.JsonContentType,
        [NatsSubjects.IdHeader] = id,
    };

    private string Subject(long n) => "rooms." + Rooms.Name((int)(n % shape.Rooms));

    private async Task<int> BarePublishAsync(NatsJSContext js, string run, int count, ScenarioContext ctx)
    {
        using var slots = new SemaphoreSlim(BareWindow, BareWindow);
        var pending = new List<Task>(count);
        var failed = 0;
        for (var n = 0; n < count; n++)
        {
            await slots.WaitAsync(ctx.Token);
            var id = $"pa-{run}-{n}";
            pending.Add(CompleteAsync(js.PublishAsync(Subject(n), LoadPayload.Create(0, n, (int)(n % shape.Rooms)), opts: new NatsJSPubOpts { MsgId = id }, headers: Headers("bare", id), cancellationToken: ctx.Token)));
        }

        await Task.WhenAll(pending);
        return count - failed; // acked, as every side counts

        async Task CompleteAsync(ValueTask<NATS.Client.JetStream.Models.PubAckResponse> publish)
        {
            try
            {
                (await publish).EnsureSuccess();
            }
            catch (Exception ex)
            {
                Interlocked.Increment(ref failed);
                ctx.Stats.Error("bare publish: " + ScenarioContext.Classify(ex));
            }
            finally
            {
                slots.Release();
            }
        }
    }

    private async Task<int> BareConcurrentAsync(NatsJSContext js, string run, int count, ScenarioContext ctx)
    {
        var futures = new List<NatsJSPublishConcurrentFuture>(BareBatch);
        var failed = 0;
        for (var n = 0; n < count; n++)
        {
            var id = $"pc-{run}-{n}";
            futures.Add(await js.PublishConcurrentAsync(Subject(n), LoadPayload.Create(0, n, (int)(n % shape.Rooms)), opts: new NatsJSPubOpts { MsgId = id }, headers: Headers("bare", id), cancellationToken: ctx.Token));
            if (futures.Count == BareBatch || n == count - 1)
            {
                foreach (var future in futures)
                {
                    await using (future)
                    {
                        try
                        {
                            (await future.GetResponseAsync(ctx.Token)).EnsureSuccess();
                        }
                        catch (Exception ex) when (!ctx.Token.IsCancellationRequested)
                        {
                            failed++;
                            ctx.Stats.Error("bare publish: " + ScenarioContext.Classify(ex));
                        }
                    }
                }

                futures.Clear();
            }
        }

        return count - failed; // acked, as every side counts
    }

    private async Task<int> BridgeAsync(List<IngestClient> connections, string run, int count, ScenarioContext ctx)
    {
        var share = count / connections.Count;
        var failedBefore = connections.Sum(c => c.Failed);
        await Task.WhenAll(connections.Select((c, i) => c.PublishAsync(run, share, n => (i * share + n) % shape.Rooms, ctx.Token)));
        // Acked publishes only: a publish_failed answer is not one the stream took (the goal says "acked/s").
        return share * connections.Count - (int)(connections.Sum(c => c.Failed) - failedBefore);
    }

    /// <summary>
    /// One publisher measured in turns: its rate in each round, and the CPU each process spent per message over the
    /// measured rounds (the harness, which is the load, nats-server, and its worker if it has one).
    /// </summary>
    private sealed class Side(string name, Func<string, int, Task<int>> publish, int natsPid, WorkerProcess? worker = null)
    {
        private readonly List<double> _rates = [];
        private TimeSpan _load;
        private TimeSpan _nats;
        private TimeSpan _worker;
        private long _messages;
        private int _warmUps;

        public string Name => name;

        public IReadOnlyList<double> Rates => _rates;

        public double Median => RoundMedian.Of(_rates);

        /// <summary>Microseconds of CPU (every core) per message: the load (this process), nats-server, the worker.</summary>
        public (double Load, double Nats, double Worker) CpuPerMessage => _messages == 0
            ? (double.NaN, double.NaN, double.NaN)
            : (_load.TotalMicroseconds / _messages, _nats.TotalMicroseconds / _messages, worker is null ? 0 : _worker.TotalMicroseconds / _messages);

        /// <summary>Publishes in runs of a tenth of a round until <paramref name="duration"/> has passed (at least one run).</summary>
        public async Task WarmUpAsync(TimeSpan duration, int messages, ScenarioContext ctx)
        {
            ctx.Status = $"{name}, warm-up";
            var clock = Stopwatch.StartNew();
            do
            {
                await publish($"warm{_warmUps++}", Math.Max(1, messages / 10));
            }
            while (clock.Elapsed < duration);
        }

        public async Task MeasureAsync(string run, int messages)
        {
            var (load, nats, work) = Cpu();
            var clock = Stopwatch.StartNew();
            var sent = await publish(run, messages);
            var elapsed = clock.Elapsed;
            _rates.Add(sent / elapsed.TotalSeconds);
            var after = Cpu();
            _load += after.Load - load;
            _nats += after.Nats - nats;
            _worker += after.Worker - work;
            _messages += sent;
        }

        private (TimeSpan Load, TimeSpan Nats, TimeSpan Worker) Cpu()
        {
            using var self = Process.GetCurrentProcess();
            return (self.TotalProcessorTime, ProcessStats.CpuTime(natsPid), worker?.CpuTime() ?? TimeSpan.Zero);
        }
    }

    /// <summary>One WebSocket client publishing with a window of unanswered publishes.</summary>
    private sealed class IngestClient : IAsyncDisposable
    {
        private readonly SemaphoreSlim _window;
        private readonly int _index;
        private readonly byte[] _frame = new byte[IngestFrame.MaxLength];
        private HttpMessageInvoker _invoker = null!;
        private CoalescingStream _stream = null!;
        private LoadClient _client = null!;
        private long _failed;

        private IngestClient(int index, int window)
        {
            _index = index;
            _window = new SemaphoreSlim(window, window);
            Size = window;
        }

        public int Size { get; }

        public long Failed => Interlocked.Read(ref _failed);

        public static async Task<IngestClient> ConnectAsync(Uri url, int index, int window, CancellationToken cancellationToken)
        {
            var ingest = new IngestClient(index, window);
            ingest._invoker = CoalescingStream.Invoker(stream => ingest._stream = stream);
            ingest._client = await LoadClient.ConnectAsync(url, new LoadClientOptions { OnPublishAnswer = ingest.OnAnswer, Invoker = ingest._invoker }, cancellationToken);
            await ingest._client.FirstFrame; // welcome
            return ingest;
        }

        private void OnAnswer(bool acked)
        {
            if (!acked)
            {
                Interlocked.Increment(ref _failed);
            }

            _window.Release();
        }

        /// <summary>Publishes <paramref name="count"/> messages and returns once every one is answered.</summary>
        public async Task PublishAsync(string run, int count, Func<int, int> room, CancellationToken cancellationToken)
        {
            // Each frame is written as bytes into the client's one buffer and sent from there (IngestFrame): no string
            // per publish. The id prefix is made once per run.
            var prefix = Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{run}-{_index}-"));
            // Frames the window lets out at once (answers come several per read) are held by the connection's stream
            // and go out in one socket write when the next must wait for an answer (CoalescingStream).
            for (var n = 0; n < count; n++)
            {
                if (!_window.Wait(0))
                {
                    await _stream.ReleaseAsync(cancellationToken);
                    await _window.WaitAsync(cancellationToken);
                }

                _stream.Hold();
                var length = IngestFrame.Write(_frame, prefix, n, room(n));
                await _client.SendJsonBytesAsync(_frame.AsMemory(0, length), cancellationToken);
            }

            await _stream.ReleaseAsync(cancellationToken);

            // Every answer back: the whole window free again.
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(60));
            for (var i = 0; i < Size; i++)
            {
                try
                {
                    await _window.WaitAsync(timeout.Token);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    throw new TimeoutException($"client {_index}: {Size - i} publishes unanswered after 60 s");
                }
            }

            _window.Release(Size);
        }

        public async ValueTask DisposeAsync()
        {
            await _client.DisposeAsync();
            _invoker.Dispose();
            _window.Dispose();
        }
    }
}

/// <summary>The ingest scenario's load: clients × window over rooms, messages per side and round.</summary>
internal sealed record IngestShape(int Clients, int Window, int Rooms, int Messages, int Rounds);
