using System.Diagnostics;
using Bridge.Client;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Reconnect storm with resume, driven by the shipped .NET client: N <see cref="BridgeClient"/>s (workers A and B
/// in their <see cref="BridgeClientOptions.Uris"/>, so all start on A) receive a steady publish stream; midway
/// worker A is SIGKILLed, every connection drops at once (no close handshake), and each client reconnects to B
/// by itself (its backoff, its URL rotation) and resumes with <c>since</c> = the last seq it has. Every client
/// must end with every message published after its first join, once: lost = 0, duplicated = 0.
/// </summary>
internal sealed class ReconnectStormScenario(ScenarioSpec spec, string configuration, int clients, int rate, int seconds) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        var cancellationToken = ctx.Token;
        var report = ctx.Report;
        await using var nats = await NatsServerProcess.StartAsync();
        await using var workerA = await WorkerProcess.StartAsync(nats.Url, configuration);
        await using var workerB = await WorkerProcess.StartAsync(nats.Url, configuration);
        ctx.Watch("worker-a", workerA.Pid);
        ctx.Watch("worker-b", workerB.Pid);
        ctx.Watch("nats-server", nats.Pid);
        const string room = "bench.storm";

        var apps = new List<AppClient>();
        try
        {
            ctx.Status = $"connecting {clients} clients to worker A";
            for (var i = 0; i < clients; i += 50)
            {
                var batch = Enumerable.Range(i, Math.Min(50, clients - i)).Select(n => new AppClient(n, new BridgeClientOptions
                {
                    Uris = [workerA.WebSocketUrl, workerB.WebSocketUrl],
                    TokenProvider = _ => ValueTask.FromResult<string?>(BenchTokens.Default),
                }, [room])).ToList();
                apps.AddRange(batch);
                await Task.WhenAll(batch.Select(a => a.StartAsync(cancellationToken)));
            }

            ctx.BeginMeasure();
            ctx.Status = $"{rate} msg/s to {clients} clients; worker A is killed at {seconds / 3.0:N1} s";
            await using var backend = new NatsConnection(new NatsOpts { Url = nats.Url });
            var js = new NatsJSContext(backend);
            var headers = new NatsHeaders { ["Bridge-Type"] = "load.tick" };
            var acked = new List<ulong>();
            var total = rate * seconds;
            var publishing = Task.Run(async () =>
            {
                var sw = Stopwatch.StartNew();
                for (var i = 0; i < total; i++)
                {
                    var wait = TimeSpan.FromSeconds((double)i / rate) - sw.Elapsed;
                    if (wait > TimeSpan.Zero)
                    {
                        await Task.Delay(wait, cancellationToken);
                    }

                    var ack = await js.PublishAsync($"rooms.{room}", "{\"sent\":0}"u8.ToArray(), headers: headers, cancellationToken: cancellationToken);
                    lock (acked)
                    {
                        acked.Add(ack.Seq);
                    }
                }
            }, cancellationToken);

            // The storm: a third of the way in, worker A dies and every client resumes on B at once.
            await Task.Delay(TimeSpan.FromSeconds(seconds / 3.0), cancellationToken);
            var sw = Stopwatch.StartNew();
            await workerA.KillAsync();
            await Rooms.WaitAsync(() => apps.All(a => a.Ready && a.Server == workerB.Id), "every client resumed on worker B", cancellationToken);
            var resumeTime = sw.Elapsed;
            await publishing;
            var last = acked[^1];
            var deadline = DateTime.UtcNow.AddSeconds(30);
            while (DateTime.UtcNow < deadline && apps.Any(a => !a.Received(room).Contains(last)))
            {
                await Task.Delay(20, cancellationToken);
            }

            long lost = 0, duplicated = 0, delivered = 0;
            foreach (var app in apps)
            {
                var start = app.StartOf(room) ?? ulong.MaxValue;
                var got = app.Received(room);
                delivered += app.Deliveries;
                duplicated += app.DuplicateDeliveries;
                lost += acked.Count(s => s > start && !got.Contains(s));
            }

            ctx.EndMeasure();
            report.Add("clients (Bridge.Client; their worker is SIGKILLed, all resume on the other at once)", clients.ToString("N0"));
            report.Add("messages published", acked.Count.ToString("N0"));
            report.Add("reconnects", apps.Sum(a => a.Connections - 1).ToString("N0"));
            report.Metric("resume_ms", "time for every client to reconnect and resume", resumeTime.TotalMilliseconds, "ms");
            ctx.Stats.Add(sent: acked.Count, expected: delivered - duplicated + lost, delivered: delivered - duplicated, duplicated: duplicated);
            ctx.Stats.Lost = lost;
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(apps.Select(a => a.DisposeAsync().AsTask()));
        }
    }
}
