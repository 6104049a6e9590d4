using System.Diagnostics;
using Bridge.LoadTests.Infrastructure;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Many rooms on one worker: one connection joins N rooms; measures activation time, the nats-server's memory
/// growth and subscription count, then checks that traffic spread over all rooms is delivered exactly.
/// Thresholds (issue 2): 10,000 rooms activate in under 2 s with the server growing by at most 50 MB.
/// </summary>
internal static class RoomActivationScenario
{
    public static async Task<bool> RunAsync(int rooms, int connections, int messages, string configuration, CancellationToken cancellationToken)
    {
        var report = new Report("rooms-activation", $"make bench (dotnet run --project Bridge.LoadTests -c {configuration} -- rooms --rooms {rooms} --connections {connections})");
        await using var nats = await NatsServerProcess.StartAsync();
        await using var worker = await WorkerProcess.StartAsync(
            nats.Url, configuration, ("Bridge:Connections:MaxRoomsPerConnection", rooms.ToString()));

        var memBefore = await ServerMemoryAsync(nats);
        var clients = await Task.WhenAll(Enumerable.Range(0, connections)
            .Select(_ => LoadClient.ConnectAsync(worker.WebSocketUrl, null, cancellationToken)));
        var names = Enumerable.Range(0, rooms).Select(i => $"bench.r{i}").ToArray();

        // Each connection joins its share of the rooms in one burst, all connections at once.
        var sw = Stopwatch.StartNew();
        await Task.WhenAll(clients.Select(async (client, c) =>
        {
            for (var i = c; i < rooms; i += connections)
            {
                await client.JoinAsync(names[i], cancellationToken);
            }
        }));

        while (clients.Sum(c => c.Joined) < rooms)
        {
            cancellationToken.ThrowIfCancellationRequested();
            await Task.Delay(5, cancellationToken);
        }

        var activation = sw.Elapsed;
        var memAfter = await ServerMemoryAsync(nats);
        var subs = await WorkerSubscriptionsAsync(nats, worker.Id);

        report.Add("rooms", rooms.ToString("N0"));
        report.Add("connections (each joins rooms/connections rooms)", connections.ToString("N0"));
        report.Add("activation time (all room.joined received)", activation.TotalMilliseconds, "ms");
        report.Add("nats-server RSS before", memBefore / 1048576.0, "MB");
        report.Add("nats-server RSS after", memAfter / 1048576.0, "MB");
        report.Add("nats-server RSS growth per room", (memAfter - memBefore) / (double)rooms, "bytes");
        report.Add("worker subscriptions on the server", subs.ToString("N0"));
        report.Add("worker RSS", worker.RssBytes() / 1048576.0, "MB");

        // Traffic spread over every room, published by a backend: each message reaches the one subscriber.
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Url });
        var js = new NatsJSContext(backend);
        var body = "{\"sent\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"u8.ToArray();
        var headers = new NatsHeaders { ["Bridge-Type"] = "load.tick" };
        sw.Restart();
        var pending = new List<Task>(256);
        for (var i = 0; i < messages; i++)
        {
            pending.Add(js.PublishAsync($"rooms.{names[i % rooms]}", body, headers: headers, cancellationToken: cancellationToken).AsTask());
            if (pending.Count == 256)
            {
                await Task.WhenAll(pending);
                pending.Clear();
            }
        }

        await Task.WhenAll(pending);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (clients.Sum(c => c.Messages) < messages && DateTime.UtcNow < deadline)
        {
            await Task.Delay(5, cancellationToken);
        }

        var delivery = sw.Elapsed;
        report.Add($"messages spread over {rooms:N0} rooms", messages.ToString("N0"));
        var delivered = clients.Sum(c => c.Messages);
        report.Add("delivered", delivered.ToString("N0"));
        report.Add("connections closed by the worker", clients.Count(c => c.CloseStatus is not null).ToString());
        report.Add("stored and delivered per second", delivered / delivery.TotalSeconds, "msg/s");

        report.Check("activation < 2 s", activation < TimeSpan.FromSeconds(2), $"{activation.TotalMilliseconds:N0} ms");
        report.Check("nats-server growth <= 50 MB", memAfter - memBefore <= 50L * 1024 * 1024, $"{(memAfter - memBefore) / 1048576.0:N1} MB");
        report.Check("one server subscription per room", subs >= rooms && subs <= rooms + 8, $"{subs:N0}");
        report.Check("every message delivered once", delivered == messages, $"{delivered:N0} of {messages:N0}");
        report.Write();
        foreach (var client in clients)
        {
            await client.DisposeAsync();
        }

        return report.Passed;
    }

    /// <summary>
    /// The alternative the design rejected, measured in the same run: one JetStream ordered consumer per room
    /// versus one core subscription per room on the republish subjects, at the same room count.
    /// </summary>
    public static async Task<bool> CompareAsync(int rooms, CancellationToken cancellationToken)
    {
        var report = new Report("rooms-mechanism", $"dotnet run --project Bridge.LoadTests -c Release -- rooms-compare --rooms {rooms}");
        foreach (var mechanism in new[] { "core subscription on republish subject", "JetStream consumer" })
        {
            await using var nats = await NatsServerProcess.StartAsync();
            await using var connection = new NatsConnection(new NatsOpts { Url = nats.Url, SubPendingChannelCapacity = 16 });
            var js = new NatsJSContext(connection);
            await js.CreateOrUpdateStreamAsync(new StreamConfig("ROOMS", ["rooms.>"])
            {
                MaxConsumers = -1,
                Republish = new Republish { Src = "rooms.>", Dest = "live.rooms.>" },
            }, cancellationToken);
            var before = await ServerMemoryAsync(nats);
            var sw = Stopwatch.StartNew();
            var handles = new List<object>(rooms);
            for (var i = 0; i < rooms; i++)
            {
                if (mechanism.StartsWith("core", StringComparison.Ordinal))
                {
                    handles.Add(await connection.SubscribeCoreAsync<byte[]>($"live.rooms.bench.r{i}", cancellationToken: cancellationToken));
                }
                else
                {
                    // A named consumer per room: what a JetStream-backed subscription per room costs the server.
                    handles.Add(await js.CreateOrUpdateConsumerAsync("ROOMS", new ConsumerConfig
                    {
                        Name = $"room-{i}",
                        FilterSubject = $"rooms.bench.r{i}",
                        DeliverPolicy = ConsumerConfigDeliverPolicy.New,
                        AckPolicy = ConsumerConfigAckPolicy.None,
                        InactiveThreshold = TimeSpan.FromMinutes(5),
                    }, cancellationToken));
                }
            }

            await connection.PingAsync(cancellationToken);
            var elapsed = sw.Elapsed;
            var after = await ServerMemoryAsync(nats);
            report.Add($"{mechanism}: create {rooms:N0}", elapsed.TotalMilliseconds, "ms");
            report.Add($"{mechanism}: server RSS growth", (after - before) / 1048576.0, "MB");
            report.Add($"{mechanism}: per room", (after - before) / (double)rooms, "bytes");
        }

        report.Write();
        return true;
    }

    private static async Task<long> ServerMemoryAsync(NatsServerProcess nats) =>
        (await nats.MonitorAsync("/varz"))["mem"]!.GetValue<long>();

    private static async Task<long> WorkerSubscriptionsAsync(NatsServerProcess nats, string workerId)
    {
        var connz = await nats.MonitorAsync("/connz?limit=1000");
        return connz["connections"]!.AsArray()
            .Where(c => (c!["name"]?.GetValue<string>() ?? "").Contains(workerId, StringComparison.Ordinal))
            .Sum(c => c!["subscriptions"]!.GetValue<long>());
    }
}
