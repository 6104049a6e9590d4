using System.Diagnostics;
using System.Globalization;
using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// MessagePack publish → MessagePack receive, worker CPU per message (issue 16 §4), before vs after in the same run:
/// "before" is a worker with <c>Bridge:Nats:StoreMessagePackAsJson</c> (a MessagePack publish is converted to JSON,
/// stored as JSON and converted back for every message, as before issue 16); "after" stores it as sent and forwards
/// the bytes. Each side gets its own nats-server and worker; MessagePack WebSocket clients publish ~64 B map payloads
/// into one room (a window of unanswered publishes each) and MessagePack subscribers in that room receive every one.
/// Worker CPU is read from the process over the measured burst (publish, store, ack, fan-out) and divided by the
/// messages published.
/// </summary>
internal sealed class MessagePackPathScenario(ScenarioSpec spec, string configuration, int publishers, int window, int messages, int rounds) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        var subscribers = spec.Find<LoadSimulation.KeepConstant>()!.Connections;
        await using var before = await Side.StartAsync(ctx, "before", configuration, subscribers, publishers, window, ("Bridge:Nats:StoreMessagePackAsJson", "true"));
        await using var after = await Side.StartAsync(ctx, "after", configuration, subscribers, publishers, window);

        // Both sides run, in turns, the same bursts: load from elsewhere on the machine falls on both alike, and each
        // side's median of its rounds is what is compared.
        await before.BurstAsync(ctx, "before: warm-up", Math.Max(publishers, messages / 10));
        await after.BurstAsync(ctx, "after: warm-up", Math.Max(publishers, messages / 10));
        var beforeRounds = new List<double>();
        var afterRounds = new List<double>();
        for (var round = 1; round <= rounds; round++)
        {
            beforeRounds.Add(await before.MeasureAsync(ctx, $"before: round {round}", messages));
            afterRounds.Add(await after.MeasureAsync(ctx, $"after: round {round}", messages));
        }

        var b = RoundMedian.Of(beforeRounds);
        var a = RoundMedian.Of(afterRounds);
        ctx.Report.Add("rounds, µs per message (before | after)", string.Join(" · ", beforeRounds.Zip(afterRounds, (x, y) => $"{x:N0} | {y:N0}")));
        ctx.Metric("cpu_us_per_msg_before", $"before (stored as JSON): worker CPU per message, median of {rounds} ({publishers} msgpack publishers, 1 room × {subscribers} msgpack subscribers)", b, "µs");
        ctx.Metric("cpu_us_per_msg_after", $"after (stored as sent): worker CPU per message, median of {rounds} (the same load)", a, "µs");
        ctx.Metric("failed_before", "before: publishes not acked", before.Failed);
        ctx.Metric("failed_after", "after: publishes not acked", after.Failed);

        // The harness reports loss only for its own injected phases: these bursts are checked here.
        ctx.Metric("gaps_seen", "sequence gaps seen by the subscribers (both sides)", ctx.Stats.Gaps);
        ctx.Metric("duplicates_seen", "duplicates seen by the subscribers (both sides)", ctx.Stats.Duplicated);
        ctx.Goal(Goals.MessagePackPath, a / b);
    }

    /// <summary>One side: its own nats-server and worker, its publishers and subscribers, and the messages sent so far.</summary>
    private sealed class Side : IAsyncDisposable
    {
        private readonly BridgeTarget _target;
        private List<IAsyncDisposable> _receivers = [];
        private List<Publisher> _senders = [];
        private long _sent;

        private Side(BridgeTarget target) => _target = target;

        public long Failed => _senders.Sum(s => s.Failed);

        public static async Task<Side> StartAsync(
            ScenarioContext ctx, string name, string configuration, int subscribers, int publishers, int window, params (string Key, string Value)[] settings)
        {
            ctx.Status = name + ": starting";
            var side = new Side(new BridgeTarget(configuration, BridgeTransport.MessagePack, settings));
            await side._target.StartAsync(ctx);
            side._receivers = await ctx.ConnectAsync((_, ct) => side._target.SubscribeAsync([0], ctx.Stats, ct), subscribers);
            side._senders = await ctx.ConnectAsync((i, ct) => Publisher.ConnectAsync(side._target.Worker.WebSocketUrl, i, window, ct), publishers);
            return side;
        }

        /// <summary>One measured burst: the worker's CPU time over it ÷ the messages published, in µs.</summary>
        public async Task<double> MeasureAsync(ScenarioContext ctx, string phase, int count)
        {
            var cpu = _target.Worker.CpuTime();
            var sw = Stopwatch.StartNew();
            var sent = await BurstAsync(ctx, phase, count);
            var used = _target.Worker.CpuTime() - cpu;
            ctx.Report.Add(phase + ": worker CPU", $"{used.TotalSeconds / sw.Elapsed.TotalSeconds * 100:N0} % of one core, {sent / sw.Elapsed.TotalSeconds:N0} msg/s published");
            return used.TotalMicroseconds / sent;
        }

        /// <summary>Publishes about <paramref name="count"/> messages and waits until every subscriber has all of them.</summary>
        public async Task<long> BurstAsync(ScenarioContext ctx, string phase, int count)
        {
            ctx.Phase = phase;
            var share = count / _senders.Count;
            await Task.WhenAll(_senders.Select(s => s.PublishAsync(phase, share, ctx.Token)));
            _sent += (long)share * _senders.Count;
            await Rooms.WaitAsync(() => _receivers.All(r => ((LoadClient)r).Messages >= _sent), "every message at every subscriber", ctx.Token);
            return (long)share * _senders.Count;
        }

        public async ValueTask DisposeAsync()
        {
            await Task.WhenAll(_senders.Select(s => s.DisposeAsync().AsTask()).Concat(_receivers.Select(r => r.DisposeAsync().AsTask())));
            await _target.DisposeAsync();
        }
    }

    /// <summary>A MessagePack WebSocket client publishing into room 0 with a window of unanswered publishes.</summary>
    private sealed class Publisher : IAsyncDisposable
    {
        private readonly SemaphoreSlim _window;
        private readonly int _index;
        private readonly int _size;
        private LoadClient _client = null!;
        private long _failed;
        private long _next;

        private Publisher(int index, int window)
        {
            _index = index;
            _size = window;
            _window = new SemaphoreSlim(window, window);
        }

        public long Failed => Interlocked.Read(ref _failed);

        public static async Task<Publisher> ConnectAsync(Uri url, int index, int window, CancellationToken cancellationToken)
        {
            var publisher = new Publisher(index, window);
            publisher._client = await LoadClient.ConnectAsync(url, new LoadClientOptions { MessagePack = true, OnPublishAnswer = publisher.OnAnswer }, cancellationToken);
            await publisher._client.FirstFrame; // welcome
            return publisher;
        }

        private void OnAnswer(bool acked)
        {
            if (!acked)
            {
                Interlocked.Increment(ref _failed);
            }

            _window.Release();
        }

        public async Task PublishAsync(string run, int count, CancellationToken cancellationToken)
        {
            var tag = run.Replace(' ', '-').Replace(':', '-').Replace('(', '-').Replace(')', '-');
            for (var n = 0; n < count; n++)
            {
                await _window.WaitAsync(cancellationToken);
                // The envelope is written as JSON; the client sends it as the same MessagePack map (the payload a map).
                // lroom = the publisher, lseq = its own count: the subscribers' tracker sees each publisher's sequence.
                var body = Encoding.UTF8.GetString(LoadPayload.Create(Stopwatch.GetTimestamp(), _next++, _index));
                await _client.SendAsync(
                    string.Create(CultureInfo.InvariantCulture, $$"""{"type":"load.msgpack","room":"{{Rooms.Name(0)}}","id":"{{tag}}-{{_index}}-{{n}}","payload":{{body}}}"""),
                    cancellationToken);
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(TimeSpan.FromSeconds(60));
            for (var i = 0; i < _size; i++)
            {
                await _window.WaitAsync(timeout.Token);
            }

            _window.Release(_size);
        }

        public async ValueTask DisposeAsync()
        {
            await _client.DisposeAsync();
            _window.Dispose();
        }
    }
}
