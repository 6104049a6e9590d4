using System.Diagnostics;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Reconnect storm with resume: N clients on worker A receive a steady publish stream; midway every one of them
/// drops (no close handshake) and reconnects at once to worker B with <c>since</c> = the last seq it saw.
/// Every client must end with every message published after its first join, once: lost = 0, duplicated = 0.
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

        var first = await Task.WhenAll(Enumerable.Range(0, clients).Select(_ => LoadClient.ConnectAsync(workerA.WebSocketUrl, null, cancellationToken, trackSeqs: true)));
        await Task.WhenAll(first.Select(c => c.JoinAsync(room, cancellationToken)));
        while (first.Any(c => c.Joined < 1))
        {
            await Task.Delay(5, cancellationToken);
        }

        var startPositions = first.Select(c => c.JoinedSeq).ToArray();
        ctx.BeginMeasure();
        ctx.Status = $"{rate} msg/s to {clients} clients; all drop and resume at {seconds / 3.0:N1} s";
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

        // The storm: a third of the way in, every client drops and resumes on the other worker.
        await Task.Delay(TimeSpan.FromSeconds(seconds / 3.0), cancellationToken);
        var sw = Stopwatch.StartNew();
        foreach (var client in first)
        {
            client.Abort();
        }

        var second = await Task.WhenAll(first.Select(async c =>
        {
            var since = c.Seqs.Count > 0 ? c.Seqs[^1] : c.JoinedSeq;
            var again = await LoadClient.ConnectAsync(workerB.WebSocketUrl, null, cancellationToken, trackSeqs: true);
            await again.SendAsync($$$"""{"type":"room.join","room":"{{{room}}}","payload":{"since":{{{since}}}}}""", cancellationToken);
            return again;
        }));
        while (second.Any(c => c.Joined < 1))
        {
            await Task.Delay(5, cancellationToken);
        }

        var resumeTime = sw.Elapsed;
        await publishing;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline && second.Any(c => c.Seqs.Count == 0 || c.Seqs[^1] < acked[^1]))
        {
            await Task.Delay(20, cancellationToken);
        }

        long lost = 0, duplicated = 0, delivered = 0;
        for (var i = 0; i < clients; i++)
        {
            var got = first[i].Seqs.Concat(second[i].Seqs).ToList();
            var expected = acked.Where(s => s > startPositions[i]).ToHashSet();
            delivered += got.Count;
            duplicated += got.Count - got.Distinct().Count();
            lost += expected.Count(s => !got.Contains(s));
        }

        ctx.EndMeasure();
        report.Add("clients (all drop and resume on another worker at once)", clients.ToString("N0"));
        report.Add("messages published", acked.Count.ToString("N0"));
        report.Metric("resume_ms", "time for every client to reconnect and resume", resumeTime.TotalMilliseconds, "ms");
        ctx.Stats.Add(sent: acked.Count, expected: delivered - duplicated + lost, delivered: delivered - duplicated, duplicated: duplicated);
        ctx.Stats.Lost = lost;
        foreach (var c in first.Concat(second))
        {
            await c.DisposeAsync();
        }
    }
}
