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
internal sealed class MessagePackPathScenario(ScenarioSpec spec, string configuration, int publishers, int window, int messages) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        var subscribers = spec.Find<LoadSimulation.KeepConstant>()!.Connections;
        var before = await MeasureAsync(ctx, "before (stored as JSON)", subscribers, ("Bridge:Nats:StoreMessagePackAsJson", "true"));
        var after = await MeasureAsync(ctx, "after (stored as sent)", subscribers);
        ctx.Metric("cpu_us_per_msg_before", $"before: worker CPU per message ({publishers} msgpack publishers, 1 room × {subscribers} msgpack subscribers)", before, "µs");
        ctx.Metric("cpu_us_per_msg_after", "after: worker CPU per message (the same load)", after, "µs");
        // The harness reports loss only for its own injected phases: these bursts are checked here.
        ctx.Metric("gaps_seen", "sequence gaps seen by the subscribers (both sides)", ctx.Stats.Gaps);
        ctx.Metric("duplicates_seen", "duplicates seen by the subscribers (both sides)", ctx.Stats.Duplicated);
        ctx.Goal(Goals.MessagePackPath, after / before);
    }

    private async Task<double> MeasureAsync(ScenarioContext ctx, string side, int subscribers, params (string Key, string Value)[] settings)
    {
        ctx.Status = side;
        await using var target = new BridgeTarget(configuration, BridgeTransport.MessagePack, settings);
        await target.StartAsync(ctx);
        var receivers = await ctx.ConnectAsync((_, ct) => target.SubscribeAsync([0], ctx.Stats, ct), subscribers);
        var senders = await ctx.ConnectAsync((i, ct) => Publisher.ConnectAsync(target.Worker.WebSocketUrl, i, window, ct), publishers);
        try
        {
            var warm = Math.Max(publishers, messages / 10);
            await BurstAsync(ctx, side + ": warm-up", senders, receivers, warm, 0);
            var cpu = target.Worker.CpuTime();
            var sw = Stopwatch.StartNew();
            await BurstAsync(ctx, side, senders, receivers, messages, warm);
            var used = target.Worker.CpuTime() - cpu;
            ctx.Report.Add(side + ": worker CPU", $"{used.TotalSeconds / sw.Elapsed.TotalSeconds * 100:N0} % of one core, {messages / sw.Elapsed.TotalSeconds:N0} msg/s published");
            ctx.Metric(side.StartsWith("before", StringComparison.Ordinal) ? "failed_before" : "failed_after", side + ": publishes not acked", senders.Sum(s => s.Failed));
            return used.TotalMicroseconds / messages;
        }
        finally
        {
            await Task.WhenAll(senders.Select(s => s.DisposeAsync().AsTask()).Concat(receivers.Select(r => r.DisposeAsync().AsTask())));
        }
    }

    /// <summary>Publishes <paramref name="count"/> messages and waits until every subscriber has all of them.</summary>
    private static async Task BurstAsync(ScenarioContext ctx, string phase, List<Publisher> senders, List<IAsyncDisposable> receivers, int count, int before)
    {
        ctx.Phase = phase;
        var share = count / senders.Count;
        await Task.WhenAll(senders.Select(s => s.PublishAsync(phase, share, ctx.Token)));
        var expected = (long)before + share * senders.Count;
        await Rooms.WaitAsync(() => receivers.All(r => ((LoadClient)r).Messages >= expected), "every message at every subscriber", ctx.Token);
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
