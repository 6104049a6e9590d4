using System.Net;
using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Limits;

namespace Bridge.Tests.Security;

/// <summary>Connection limits (per user across workers, per IP, per worker) and the per-connection message rate.</summary>
public sealed class LimitTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private readonly Tokens _tokens = new();

    public void Dispose() => _tokens.Dispose();

    [Fact]
    public async Task The_sixth_connection_of_a_user_is_refused_even_on_another_worker()
    {
        var settings = _tokens.WorkerSettings(("Bridge:Limits:MaxConnectionsPerUser", "5"));
        await using var a = await WorkerHost.StartAsync(nats.Server, settings);
        await using var b = await WorkerHost.StartAsync(nats.Server, settings);
        var user = "u-" + Guid.NewGuid().ToString("N")[..8];
        var token = _tokens.Create(user, subRooms: ["r.>"]);

        var open = new List<TestClient>();
        try
        {
            foreach (var worker in new[] { a, a, a, b, b })
            {
                open.Add(await ConnectAsync(worker, token));
            }

            Assert.Equal(HttpStatusCode.TooManyRequests, await StatusOfAsync(b, token));
            Assert.Equal(HttpStatusCode.TooManyRequests, await StatusOfAsync(a, token));

            // Another user is not affected.
            await using (await ConnectAsync(b, _tokens.Create("someone-else-" + user, subRooms: ["r.>"])))
            {
            }

            // Closing one on A frees a place, which B sees.
            await open[0].DisposeAsync();
            open.RemoveAt(0);
            await Eventually.TrueAsync(async () =>
            {
                try
                {
                    open.Add(await ConnectAsync(b, token));
                    return true;
                }
                catch (WebSocketException)
                {
                    return false;
                }
            }, because: "a closed connection no longer counts");
            Assert.Equal(HttpStatusCode.TooManyRequests, await StatusOfAsync(a, token));
        }
        finally
        {
            foreach (var client in open)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_killed_workers_connections_stop_counting_after_the_lease()
    {
        var settings = _tokens.WorkerSettings(("Bridge:Limits:MaxConnectionsPerUser", "2"), ("Bridge:Limits:UserCountLease", "00:00:03"));
        await using var b = await WorkerHost.StartAsync(nats.Server, settings);
        var user = "u-" + Guid.NewGuid().ToString("N")[..8];
        var token = _tokens.Create(user, subRooms: ["r.>"]);
        var a = await WorkerHost.StartAsync(nats.Server, settings);
        var c1 = await ConnectAsync(a, token);
        var c2 = await ConnectAsync(a, token);
        Assert.Equal(HttpStatusCode.TooManyRequests, await StatusOfAsync(b, token));

        // A dies without releasing: stop its renewals by stopping the worker's NATS side, keeping the counts written.
        await a.Get<UserConnectionCounter>().StopAsync(CancellationToken.None);
        c1.Socket.Abort();
        c2.Socket.Abort();
        await Eventually.TrueAsync(async () => await StatusOfAsync(b, token) == HttpStatusCode.SwitchingProtocols,
            TimeSpan.FromSeconds(15), "the dead worker's lease ran out");
        await a.DisposeAsync();
    }

    [Fact]
    public async Task Per_ip_and_per_worker_limits_refuse_before_the_upgrade()
    {
        await using (var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(("Bridge:Limits:MaxConnectionsPerIp", "2"))))
        {
            await using var c1 = await ConnectAsync(worker, _tokens.Create("ip-1", subRooms: ["r.>"]));
            await using var c2 = await ConnectAsync(worker, _tokens.Create("ip-2", subRooms: ["r.>"]));
            Assert.Equal(HttpStatusCode.TooManyRequests, await StatusOfAsync(worker, _tokens.Create("ip-3", subRooms: ["r.>"])));
        }

        await using (var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(("Bridge:Limits:MaxConnections", "1"))))
        {
            await using var c1 = await ConnectAsync(worker, _tokens.Create("w-1", subRooms: ["r.>"]));
            Assert.Equal(HttpStatusCode.ServiceUnavailable, await StatusOfAsync(worker, _tokens.Create("w-2", subRooms: ["r.>"])));
            Assert.Equal(1, worker.Get<ConnectionLimits>().Total);
        }
    }

    [Fact]
    public async Task A_flood_is_throttled_without_affecting_other_connections()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(
            ("Bridge:Limits:MessagesPerSecond", "20"), ("Bridge:Limits:MessageBurst", "20")));
        var room = "r." + Guid.NewGuid().ToString("N")[..8];
        await using var flooder = await ConnectAsync(worker, _tokens.Create("flooder", subRooms: ["r.>"], pubRooms: ["r.>"]));
        await using var calm = await ConnectAsync(worker, _tokens.Create("calm", subRooms: ["r.>"], pubRooms: ["r.>"]));
        await calm.JoinAndWaitAsync(room);

        const int Flood = 300;
        var started = DateTime.UtcNow;
        for (var i = 0; i < Flood; i++)
        {
            await flooder.PublishAsync(room, new { i }, id: $"f{i}");
        }

        var answers = await flooder.CollectAsync(Flood, f => f.Type is MessageTypes.Ack or MessageTypes.Error && f.Id is not null || f.ErrorCode is not null);
        var elapsed = DateTime.UtcNow - started;
        var acked = answers.Count(f => f.Type == MessageTypes.Ack);
        var limited = answers.Where(f => f.ErrorCode == ErrorCodes.RateLimited).ToList();
        // At most the burst plus what 20/s refills while the flood lasted.
        Assert.InRange(acked, 20, 20 + (int)Math.Ceiling(elapsed.TotalSeconds * 20) + 2);
        Assert.Equal(Flood - acked, limited.Count);
        // Refused frames say which: the client can retry exactly those ids.
        Assert.All(limited, f => Assert.StartsWith("f", f.Payload!["ref"]!.GetValue<string>(), StringComparison.Ordinal));

        // The calm connection still gets its own publishes through, and received only the acked flood messages.
        for (var i = 0; i < 5; i++)
        {
            await calm.PublishAsync(room, new { calm = i }, id: $"c{i}");
        }

        var calmAcks = await calm.CollectAsync(5, f => f.Type == MessageTypes.Ack);
        Assert.All(calmAcks, f => Assert.StartsWith("c", f.Id!, StringComparison.Ordinal));
        Assert.False(flooder.Closed.IsCompleted);
    }

    [Fact]
    public async Task Empty_messages_count_against_the_frame_rate_like_any_other_frame()
    {
        // A bucket of 3 that refills one token a second; six frames sent at once: at most 4 are let through
        // (3, and 1 if a refill falls inside the burst), so at least 2 are refused. Were the empty messages not
        // counted, the three publishes would fit in the bucket.
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(
            ("Bridge:Limits:MessagesPerSecond", "1"), ("Bridge:Limits:MessageBurst", "3")));
        await using var client = await ConnectAsync(worker, _tokens.Create("empty", subRooms: ["r.>"], pubRooms: ["r.>"]));
        var room = "r." + Guid.NewGuid().ToString("N")[..8];
        for (var i = 0; i < 3; i++)
        {
            await client.SendRawAsync([]);
        }

        for (var i = 0; i < 3; i++)
        {
            await client.PublishAsync(room, i, id: $"p{i}");
        }

        var answers = await client.CollectAsync(6, f => f.Type is MessageTypes.Error or MessageTypes.Ack);
        Assert.True(answers.Count(f => f.ErrorCode == ErrorCodes.RateLimited) >= 2, string.Join(" | ", answers));
        Assert.Equal(6, answers.Count(f => f.Type == MessageTypes.Ack || f.ErrorCode is ErrorCodes.BadFrame or ErrorCodes.RateLimited));
    }

    private static Task<TestClient> ConnectAsync(WorkerHost worker, string token) =>
        TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"));

    /// <summary>The HTTP status of an upgrade attempt (closed again at once unless refused).</summary>
    private static async Task<HttpStatusCode> StatusOfAsync(WorkerHost worker, string token)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        try
        {
            await socket.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"), CancellationToken.None);
        }
        catch (WebSocketException)
        {
        }

        var status = socket.HttpStatusCode;
        if (socket.State == WebSocketState.Open)
        {
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "probe", CancellationToken.None);
        }

        socket.Dispose();
        return status;
    }
}
