using System.Diagnostics;
using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Durable delivery costs (issue 3): the replay rate for one resuming client, and how long a dashboard
/// connection takes to resume many rooms in one <c>room.join</c>.
/// </summary>
internal sealed class ResumeScenario(ScenarioSpec spec, string configuration, int replayMessages, int dashboardRooms, int perRoom) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        var cancellationToken = ctx.Token;
        var report = ctx.Report;
        await using var nats = await NatsServerProcess.StartAsync();
        await using var worker = await WorkerProcess.StartAsync(nats.Url, configuration, ("Bridge:Connections:MaxRoomsPerConnection", Math.Max(1000, dashboardRooms).ToString()));
        ctx.Watch("worker", worker.Pid);
        ctx.Watch("nats-server", nats.Pid);
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Url });
        var js = new NatsJSContext(backend);
        var headers = new NatsHeaders { ["Bridge-Type"] = "load.tick" };
        var body = "{\"sent\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"u8.ToArray();

        async Task PublishAsync(IEnumerable<string> subjects)
        {
            var pending = new List<Task>(256);
            foreach (var subject in subjects)
            {
                pending.Add(js.PublishAsync(subject, body, headers: headers, cancellationToken: cancellationToken).AsTask());
                if (pending.Count == 256)
                {
                    await Task.WhenAll(pending);
                    pending.Clear();
                }
            }

            await Task.WhenAll(pending);
        }

        ctx.Status = "publishing the backlog";
        // 1. One client resumes a room from the start of a long backlog.
        await PublishAsync(Enumerable.Repeat("rooms.bench.replay", replayMessages));
        await using (var client = await LoadClient.ConnectAsync(worker.WebSocketUrl, new LoadClientOptions(), cancellationToken))
        {
            ctx.Status = "one client resumes from since 0";
            ctx.BeginMeasure();
            var sw = Stopwatch.StartNew();
            await client.SendAsync("""{"type":"room.join","room":"bench.replay","payload":{"since":0}}""", cancellationToken);
            await WaitAsync(() => client.Joined >= 1, cancellationToken);
            var elapsed = sw.Elapsed;
            report.Add("replay: messages replayed to one client", client.Messages.ToString("N0"));
            report.Metric("replay_ms", "replay: time until room.joined", elapsed.TotalMilliseconds, "ms");
            report.Metric("replay_rate", "replay: rate", client.Messages / elapsed.TotalSeconds, "msg/s");
            report.Metric("replay_missing", "replay: backlog messages missing or extra", Math.Abs(replayMessages - client.Messages));
            ctx.Stats.Add(expected: replayMessages, delivered: client.Messages);
        }

        // 2. A dashboard resumes many rooms in one message: with a backlog in each, then with nothing missed.
        var rooms = Enumerable.Range(0, dashboardRooms).Select(i => $"bench.dash{i}").ToArray();
        await PublishAsync(rooms.SelectMany(r => Enumerable.Repeat($"rooms.{r}", perRoom)));
        foreach (var (label, since) in new[] { ("backlog", "0"), ("caught up", "LAST") })
        {
            await using var client = await LoadClient.ConnectAsync(worker.WebSocketUrl, new LoadClientOptions(), cancellationToken);
            var entries = new StringBuilder();
            foreach (var room in rooms)
            {
                var position = since == "LAST" ? await LastSeqAsync(js, room, cancellationToken) : 0UL;
                entries.Append(entries.Length > 0 ? "," : "").Append($$"""{"room":"{{room}}","since":{{position}}}""");
            }

            var sw = Stopwatch.StartNew();
            await client.SendAsync("{\"type\":\"room.join\",\"payload\":{\"rooms\":[" + entries + "]}}", cancellationToken);
            await WaitAsync(() => client.Joined >= dashboardRooms, cancellationToken);
            var elapsed = sw.Elapsed;
            var expected = since == "LAST" ? 0 : (long)dashboardRooms * perRoom;
            report.Metric(label == "backlog" ? "dashboard_backlog_ms" : "dashboard_caught_up_ms", $"dashboard ({label}): {dashboardRooms} rooms resumed in one room.join", elapsed.TotalMilliseconds, "ms");
            report.Add($"dashboard ({label}): messages replayed", client.Messages.ToString("N0"));
            report.Metric(label == "backlog" ? "dashboard_backlog_wrong" : "dashboard_caught_up_wrong", $"dashboard ({label}): |replayed − missed| (must be 0)", Math.Abs(client.Messages - expected));
            ctx.Stats.Add(expected: expected, delivered: Math.Min(client.Messages, expected));
        }

        ctx.EndMeasure();
        ctx.Stats.Lost = ctx.Stats.Expected - ctx.Stats.Delivered;
    }

    private static async Task<ulong> LastSeqAsync(NatsJSContext js, string room, CancellationToken cancellationToken)
    {
        var stream = await js.GetStreamAsync("ROOMS", cancellationToken: cancellationToken);
        var last = await stream.GetDirectAsync<byte[]>(new NATS.Client.JetStream.Models.StreamMsgGetRequest { LastBySubj = $"rooms.{room}" }, cancellationToken: cancellationToken);
        return ulong.Parse(last.Headers!["Nats-Sequence"].ToString());
    }

    private static async Task WaitAsync(Func<bool> condition, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddSeconds(120);
        while (!condition())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException("the scenario did not complete within 120 s");
            }

            await Task.Delay(2, cancellationToken);
        }
    }
}
