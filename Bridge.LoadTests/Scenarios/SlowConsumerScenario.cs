using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Slow consumers mixed in: healthy clients in one room receive a steady rate; phase A measures their latency
/// alone, then clients that join the same room and never read (4 KB socket receive buffers) are added and
/// phase B measures the healthy clients again, same run, same servers. The healthy p99 must not move: the
/// threshold is on the ratio B/A (with 5 ms added to both, so that noise at a few ms cannot fail it), plus zero
/// loss for the healthy clients. The worker runs with a small send queue so slow clients hit it quickly.
/// </summary>
internal sealed class SlowConsumerScenario(ScenarioSpec spec, string configuration, int slow) : IScenario
{
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
        try
        {
            await using var publisher = await target.CreatePublisherAsync(ctx.Stats, ctx.Token);
            // One sequence across both phases: receivers check the room's order over the whole run.
            long seq = 0;
            ValueTask Publish(long n, long ts) => publisher.PublishAsync(0, LoadPayload.Create(ts, seq++, 0), ctx.Token);

            ctx.Status = "phase A: healthy clients only";
            var a = await ctx.InjectAsync(Publish, healthy.Count, () => publisher.FlushAsync(ctx.Token));

            ctx.Status = $"adding {slow} clients that never read";
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
            }

            await Task.Delay(500, ctx.Token);
            ctx.Status = "phase B: healthy and slow clients";
            var b = await ctx.InjectAsync(Publish, healthy.Count, () => publisher.FlushAsync(ctx.Token));

            ctx.Metric("healthy", "healthy clients", healthy.Count);
            ctx.Metric("slow", "clients that never read (phase B)", slowClients.Count);
            ctx.Metric("p99_without_ms", "healthy p99, phase A (no slow clients)", a.P99Ms, "ms");
            ctx.Metric("p99_with_ms", "healthy p99, phase B (slow clients mixed in)", b.P99Ms, "ms");
            ctx.Metric("p99_ratio", "healthy p99 ratio B/A (+5 ms each)", (b.P99Ms + 5) / (a.P99Ms + 5));
            ctx.Metric("lost_a", "healthy lost, phase A", a.Lost);
            ctx.Metric("lost_b", "healthy lost, phase B", b.Lost);

            ctx.Status = "reading what the slow clients were sent";
            var fates = await Task.WhenAll(slowClients.Select(FateAsync));
            foreach (var group in fates.GroupBy(f => f).OrderBy(g => g.Key, StringComparer.Ordinal))
            {
                ctx.Report.Add($"slow clients: {group.Key}", group.Count().ToString(System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        finally
        {
            ctx.Phase = "teardown";
            foreach (var ws in slowClients)
            {
                ws.Abort();
                ws.Dispose();
            }

            await Task.WhenAll(healthy.Select(s => s.DisposeAsync().AsTask()));
        }
    }

    /// <summary>Reads a slow client's backlog for up to 3 s: was it closed (with which code) or still open?</summary>
    private static async Task<string> FateAsync(ClientWebSocket ws)
    {
        var buffer = new byte[64 * 1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(3));
        try
        {
            while (true)
            {
                var r = await ws.ReceiveAsync(buffer.AsMemory(), cts.Token);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    return $"closed by the worker with {(int?)ws.CloseStatus}";
                }
            }
        }
        catch (OperationCanceledException)
        {
            return "still open (backlog fit in the socket buffers)";
        }
        catch (WebSocketException)
        {
            return "dropped by the worker";
        }
    }
}
