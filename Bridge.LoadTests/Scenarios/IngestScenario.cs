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
internal sealed class IngestScenario(ScenarioSpec spec, string configuration, int clients, int window, int rooms, int messages) : IScenario
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
        var warm = Math.Max(1, messages / 10);

        ctx.Phase = "warm-up";
        await BarePublishAsync(js, "warm-a", warm, ctx);
        await BareConcurrentAsync(js, "warm-b", warm, ctx);
        ctx.Phase = "measuring";
        var publishAsync = await BarePublishAsync(js, "pa", messages, ctx);
        var concurrent = await BareConcurrentAsync(js, "pc", messages, ctx);

        var connections = await ctx.ConnectAsync((i, ct) => IngestClient.ConnectAsync(target.Worker.WebSocketUrl, i, window, ct), clients);
        try
        {
            ctx.Phase = "warm-up";
            await BridgeAsync(connections, "warm", warm, target, ctx);
            ctx.Phase = "measuring";
            var bridge = await BridgeAsync(connections, "run", messages, target, ctx);

            var best = Math.Max(publishAsync, concurrent);
            ctx.Metric("bare_publish_async_per_s", $"bare NATS.Net PublishAsync, {BareWindow} in flight: msg/s", publishAsync, "msg/s");
            ctx.Metric("bare_publish_concurrent_per_s", $"bare NATS.Net PublishConcurrentAsync, awaited in batches of {BareBatch:N0}: msg/s", concurrent, "msg/s");
            ctx.Metric("bridge_ingest_per_s", $"Bridge: {connections.Count} WebSocket clients × {window} in flight, {rooms} rooms, acked msg/s", bridge, "msg/s");
            ctx.Metric("publish_failed", "Bridge: publishes answered publish_failed (or not answered)", connections.Sum(c => c.Failed));
            ctx.Goal(Goals.Ingest, bridge / best);
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(connections.Select(c => c.DisposeAsync().AsTask()));
        }
    }

    // The headers the worker stores with a WebSocket publish, and its de-duplication key.
    private static NatsHeaders Headers(string from, string id) => new()
    {
        [NatsSubjects.TypeHeader] = "load.ingest",
        [NatsSubjects.FromHeader] = from,
        [NatsSubjects.ContentTypeHeader] = NatsSubjects.JsonContentType,
        [NatsSubjects.IdHeader] = id,
    };

    private string Subject(long n) => "rooms." + Rooms.Name((int)(n % rooms));

    private async Task<double> BarePublishAsync(NatsJSContext js, string run, int count, ScenarioContext ctx)
    {
        ctx.Status = $"bare PublishAsync ({run})";
        using var slots = new SemaphoreSlim(BareWindow, BareWindow);
        var pending = new List<Task>(count);
        var sw = Stopwatch.StartNew();
        for (var n = 0; n < count; n++)
        {
            await slots.WaitAsync(ctx.Token);
            var id = $"{run}-{n}";
            pending.Add(CompleteAsync(js.PublishAsync(Subject(n), LoadPayload.Create(0, n, (int)(n % rooms)), opts: new NatsJSPubOpts { MsgId = id }, headers: Headers("bare", id), cancellationToken: ctx.Token)));
        }

        await Task.WhenAll(pending);
        return count / sw.Elapsed.TotalSeconds;

        async Task CompleteAsync(ValueTask<NATS.Client.JetStream.Models.PubAckResponse> publish)
        {
            try
            {
                (await publish).EnsureSuccess();
            }
            catch (Exception ex)
            {
                ctx.Stats.Error("bare publish: " + ScenarioContext.Classify(ex));
            }
            finally
            {
                slots.Release();
            }
        }
    }

    private async Task<double> BareConcurrentAsync(NatsJSContext js, string run, int count, ScenarioContext ctx)
    {
        ctx.Status = $"bare PublishConcurrentAsync ({run})";
        var futures = new List<NatsJSPublishConcurrentFuture>(BareBatch);
        var sw = Stopwatch.StartNew();
        for (var n = 0; n < count; n++)
        {
            var id = $"{run}-{n}";
            futures.Add(await js.PublishConcurrentAsync(Subject(n), LoadPayload.Create(0, n, (int)(n % rooms)), opts: new NatsJSPubOpts { MsgId = id }, headers: Headers("bare", id), cancellationToken: ctx.Token));
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
                            ctx.Stats.Error("bare publish: " + ScenarioContext.Classify(ex));
                        }
                    }
                }

                futures.Clear();
            }
        }

        return count / sw.Elapsed.TotalSeconds;
    }

    private async Task<double> BridgeAsync(List<IngestClient> connections, string run, int count, BridgeTarget target, ScenarioContext ctx)
    {
        ctx.Status = $"Bridge ingest ({run})";
        var worker = target.Worker.CpuTime();
        var sw = Stopwatch.StartNew();
        var share = count / connections.Count;
        await Task.WhenAll(connections.Select((c, i) => c.PublishAsync(run, share, n => (i * share + n) % rooms, ctx.Token)));
        var elapsed = sw.Elapsed;
        if (run != "warm")
        {
            ctx.Report.Add("Bridge: worker CPU", $"{(target.Worker.CpuTime() - worker).TotalSeconds / elapsed.TotalSeconds * 100:N0} % of one core");
        }

        return share * connections.Count / elapsed.TotalSeconds;
    }

    /// <summary>One WebSocket client publishing with a window of unanswered publishes.</summary>
    private sealed class IngestClient : IAsyncDisposable
    {
        private readonly SemaphoreSlim _window;
        private readonly int _index;
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
            ingest._client = await LoadClient.ConnectAsync(url, new LoadClientOptions { OnPublishAnswer = ingest.OnAnswer }, cancellationToken);
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
            for (var n = 0; n < count; n++)
            {
                await _window.WaitAsync(cancellationToken);
                var r = room(n);
                var body = Encoding.UTF8.GetString(LoadPayload.Create(0, n, r));
                await _client.SendAsync(
                    string.Create(CultureInfo.InvariantCulture, $$"""{"type":"load.ingest","room":"{{Rooms.Name(r)}}","id":"{{run}}-{{_index}}-{{n}}","payload":{{body}}}"""),
                    cancellationToken);
            }

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
            _window.Dispose();
        }
    }
}
