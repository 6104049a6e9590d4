using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Lagging members mixed in: healthy clients in one room receive a steady rate; phase A measures their latency
/// alone, then clients that join the same room and read far slower than it (one frame every 200 ms, 4 KB socket
/// receive buffers) are added, a burst puts them behind (the worker's lagging gauge counts them; the healthy ones,
/// behind for a moment too, catch up before phase B starts), and phase B measures the healthy clients again while the lagging ones keep reading the room from the stream, same
/// run, same servers. The healthy p99 must not move: the threshold is on the ratio B/A (with 5 ms added to both, so
/// that noise at a few ms cannot fail it), plus zero loss for the healthy clients and no lagging client closed. The
/// worker runs with a small send queue so slow clients fall behind quickly.
/// </summary>
internal sealed class SlowConsumerScenario(ScenarioSpec spec, string configuration, int slow) : IScenario
{
    // A lagging client reads one frame, then waits this long: 5 frames/s against the room's 50 msg/s.
    private static readonly TimeSpan SlowRead = TimeSpan.FromMilliseconds(200);

    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var target = new BridgeTarget(configuration, BridgeTransport.Json,
            ("Bridge:Connections:MaxFrameBytes", "16384"),
            ("Bridge:Connections:SendQueueCapacity", "64"),
            ("Bridge:Connections:SendQueueMaxBytes", "65536"));
        await target.StartAsync(ctx);
        var healthy = await ctx.ConnectAsync((_, ct) => target.SubscribeAsync([0], ctx.Stats, ct));
        var slowClients = new List<ClientWebSocket>();
        var slowReaders = new List<Task<string>>();
        using var stopReading = CancellationTokenSource.CreateLinkedTokenSource(ctx.Token);
        try
        {
            await using var publisher = await target.CreatePublisherAsync(ctx.Stats, ctx.Token);
            // One sequence across both phases: receivers check the room's order over the whole run.
            long seq = 0;
            ValueTask Publish(long n, long ts) => publisher.PublishAsync(0, LoadPayload.Create(ts, seq++, 0), ctx.Token);

            ctx.Status = "phase A: healthy clients only";
            var a = await ctx.InjectAsync(Publish, healthy.Count, () => publisher.FlushAsync(ctx.Token));

            ctx.Status = $"adding {slow} clients that read slower than the room";
            using var invoker = new HttpMessageInvoker(new SocketsHttpHandler
            {
                ConnectCallback = async (context, ct) =>
                {
                    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
                    await socket.ConnectAsync(context.DnsEndPoint, ct);
                    return new NetworkStream(socket, ownsSocket: true);
                },
            });
            for (var i = 0; i < slow; i++)
            {
                var ws = new ClientWebSocket();
                ws.Options.AddSubProtocol("bridge.v1.json");
                await ws.ConnectAsync(BenchTokens.WithToken(target.Worker.WebSocketUrl, BenchTokens.Default), invoker, ctx.Token);
                await ws.SendAsync(Encoding.UTF8.GetBytes($$"""{"type":"room.join","room":"{{Rooms.Name(0)}}"}"""), WebSocketMessageType.Text, true, ctx.Token);
                slowClients.Add(ws);
                slowReaders.Add(ReadSlowlyAsync(ws, stopReading.Token));
            }

            // A burst (not measured) larger than their queues and what loopback sockets buffer (a few MB) puts the
            // slow clients behind at once, and the healthy ones for a moment (the send queue is small here). Phase B
            // starts once the healthy ones have caught up: only the slow ones are left lagging, and at 5 frames/s
            // (400 frames of 16 KB to read) they stay behind the whole phase.
            ctx.Status = "a burst that puts the slow clients behind";
            var catchUpsBefore = await target.Worker.MetricAsync("bridge_catchups_total", ctx.Token);
            for (var i = 0; i < 400; i++)
            {
                await publisher.PublishAsync(0, LoadPayload.Create(System.Diagnostics.Stopwatch.GetTimestamp(), seq++, 0, size: 16 * 1024), ctx.Token);
            }

            await publisher.FlushAsync(ctx.Token);
            ctx.Status = "waiting until only the slow clients lag";
            var settled = DateTime.UtcNow.AddSeconds(60);
            double laggingAtStart;
            while (((laggingAtStart = await target.Worker.MetricAsync("bridge_members_lagging", ctx.Token)) > slow || laggingAtStart < 1) && DateTime.UtcNow < settled)
            {
                await Task.Delay(100, ctx.Token);
            }

            await Task.Delay(500, ctx.Token);

            ctx.Status = "phase B: healthy and lagging clients";
            var b = await ctx.InjectAsync(Publish, healthy.Count, () => publisher.FlushAsync(ctx.Token));
            var lagging = await target.Worker.MetricAsync("bridge_members_lagging", ctx.Token);

            ctx.Metric("healthy", "healthy clients", healthy.Count);
            ctx.Metric("slow", "clients reading slower than the room (phase B)", slowClients.Count);
            ctx.Metric("slow_fell_behind", "catch-ups counted by the worker since the slow clients joined", await target.Worker.MetricAsync("bridge_catchups_total", ctx.Token) - catchUpsBefore);
            ctx.Metric("lagging_start_b", "members lagging at the start of phase B (worker gauge)", laggingAtStart);
            ctx.Metric("lagging_end_b", "members lagging at the end of phase B (worker gauge)", lagging);
            ctx.Metric("p99_without_ms", "healthy p99, phase A (no lagging clients)", a.P99Ms, "ms");
            ctx.Metric("p99_with_ms", "healthy p99, phase B (lagging clients mixed in)", b.P99Ms, "ms");
            ctx.Metric("p99_ratio", "healthy p99 ratio B/A (+5 ms each)", (b.P99Ms + 5) / (a.P99Ms + 5));
            ctx.Goal(Goals.SlowConsumer, (b.P99Ms + 5) / (a.P99Ms + 5));
            ctx.Metric("lost_a", "healthy lost, phase A", a.Lost);
            ctx.Metric("lost_b", "healthy lost, phase B", b.Lost);

            await stopReading.CancelAsync();
            var fates = await Task.WhenAll(slowReaders);
            ctx.Metric("slow_closed", "slow clients closed by the worker", fates.Count(f => f.StartsWith("closed", StringComparison.Ordinal)));
            foreach (var group in fates.GroupBy(f => f).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                ctx.Report.Add($"slow clients: {group.Key}", group.Count().ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        finally
        {
            ctx.Phase = "teardown";
            await stopReading.CancelAsync();
            foreach (var ws in slowClients)
            {
                ws.Abort();
                ws.Dispose();
            }

            await Task.WhenAll(healthy.Select(s => s.DisposeAsync().AsTask()));
        }
    }

    /// <summary>Reads one frame every <see cref="SlowRead"/> until stopped: was it closed by the worker (with which code), or still open?</summary>
    private static async Task<string> ReadSlowlyAsync(ClientWebSocket ws, CancellationToken stop)
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var r = await ws.ReceiveAsync(buffer.AsMemory(), stop);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    return $"closed by the worker with {(int?)ws.CloseStatus}";
                }

                await Task.Delay(SlowRead, stop);
            }
        }
        catch (OperationCanceledException)
        {
            return "still open, reading (lagging or caught up)";
        }
        catch (WebSocketException)
        {
            return "closed: dropped by the worker";
        }
    }
}
