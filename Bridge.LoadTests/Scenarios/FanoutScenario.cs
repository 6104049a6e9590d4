using System.Diagnostics;
using Bridge.LoadTests.Infrastructure;
using Bridge.Testing;
using HdrHistogram;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Fan-out to N local connections in one room. A backend publishes through JetStream; the worker delivers each
/// message to every connection. Measures saturated delivered/s and latency at a fixed rate.
/// </summary>
internal static class FanoutScenario
{
    public static async Task<bool> RunAsync(int connections, int burst, int rate, TimeSpan duration, double p99LimitMs, string configuration, CancellationToken cancellationToken)
    {
        var report = new Report("fanout", $"make bench (dotnet run --project Bridge.LoadTests -c {configuration} -- fanout --connections {connections} --messages {burst} --rate {rate})");
        await using var nats = await NatsServerProcess.StartAsync();
        await using var worker = await WorkerProcess.StartAsync(nats.Url, configuration);
        var latency = new LongConcurrentHistogram(1, 60_000_000, 3) /* microseconds, up to a minute */;
        var clients = new List<LoadClient>(connections);
        try
        {
            for (var i = 0; i < connections; i += 50)
            {
                var batch = await Task.WhenAll(Enumerable.Range(i, Math.Min(50, connections - i))
                    .Select(_ => LoadClient.ConnectAsync(worker.WebSocketUrl, latency, cancellationToken)));
                clients.AddRange(batch);
            }

            await Task.WhenAll(clients.Select(c => c.JoinAsync("bench.fanout", cancellationToken)));
            while (clients.Any(c => c.Joined < 1))
            {
                await Task.Delay(10, cancellationToken);
            }

            report.Add("connections in the room", connections.ToString("N0"));
            report.Add("worker RSS with connections joined", worker.RssBytes() / 1048576.0, "MB");

            await using var backend = new NatsConnection(new NatsOpts { Url = nats.Url });
            var js = new NatsJSContext(backend);
            var headers = new NatsHeaders { ["Bridge-Type"] = "load.tick" };

            // 1. Saturated: a burst published as fast as JetStream acknowledges it.
            var cpuBefore = worker.CpuTime();
            var sw = Stopwatch.StartNew();
            var pending = new List<Task>(64);
            for (var i = 0; i < burst; i++)
            {
                pending.Add(js.PublishAsync("rooms.bench.fanout", Body(), headers: headers, cancellationToken: cancellationToken).AsTask());
                if (pending.Count == 64)
                {
                    await Task.WhenAll(pending);
                    pending.Clear();
                }
            }

            await Task.WhenAll(pending);
            var expected = (long)burst * connections;
            var deadline = DateTime.UtcNow.AddSeconds(120);
            while (clients.Sum(c => c.Messages) < expected && DateTime.UtcNow < deadline)
            {
                await Task.Delay(5, cancellationToken);
            }

            var elapsed = sw.Elapsed;
            var delivered = clients.Sum(c => c.Messages);
            var cpu = worker.CpuTime() - cpuBefore;
            report.Add("burst: messages published", burst.ToString("N0"));
            report.Add("burst: deliveries", $"{delivered:N0} of {expected:N0}");
            report.Add("burst: delivered/s (saturated)", delivered / elapsed.TotalSeconds, "msg/s");
            report.Add("burst: worker CPU", cpu.TotalSeconds / elapsed.TotalSeconds * 100, "% of one core");
            report.AddLatency("burst", latency);
            report.Check("every burst message delivered to every connection", delivered == expected, $"{delivered:N0} of {expected:N0}");

            // 2. Fixed rate: latency when not saturated.
            latency.Reset();
            var before = clients.Sum(c => c.Messages);
            var total = (int)(rate * duration.TotalSeconds);
            var interval = TimeSpan.FromSeconds(1.0 / rate);
            sw.Restart();
            for (var i = 0; i < total; i++)
            {
                var due = interval * i;
                var wait = due - sw.Elapsed;
                if (wait > TimeSpan.Zero)
                {
                    await Task.Delay(wait, cancellationToken);
                }

                _ = js.PublishAsync("rooms.bench.fanout", Body(), headers: headers, cancellationToken: cancellationToken).AsTask();
            }

            expected = before + (long)total * connections;
            deadline = DateTime.UtcNow.AddSeconds(30);
            while (clients.Sum(c => c.Messages) < expected && DateTime.UtcNow < deadline)
            {
                await Task.Delay(5, cancellationToken);
            }

            delivered = clients.Sum(c => c.Messages) - before;
            report.Add($"fixed rate: {rate} msg/s for {duration.TotalSeconds:N0} s", $"{(long)rate * connections:N0} deliveries/s offered");
            report.Add("fixed rate: deliveries", $"{delivered:N0} of {(long)total * connections:N0}");
            report.AddLatency("fixed rate", latency);
            report.Add("worker RSS after", worker.RssBytes() / 1048576.0, "MB");
            report.Check("every fixed-rate message delivered", delivered == (long)total * connections, $"{delivered:N0}");
            var p99 = latency.TotalCount == 0 ? double.MaxValue : latency.GetValueAtPercentile(99) / 1000.0;
            report.Check($"fixed-rate p99 < {p99LimitMs:N0} ms", p99 < p99LimitMs, $"{p99:N1} ms");
        }
        finally
        {
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
        }

        report.Write();
        return report.Passed;
    }

    private static byte[] Body() => System.Text.Encoding.UTF8.GetBytes($"{{\"sent\":{Stopwatch.GetTimestamp()},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx\"}}");
}
