using System.Collections.Concurrent;
using System.Text.Json;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Client;

/// <summary>The .NET client (Bridge.Client) against real workers on Kestrel and a real nats-server.</summary>
public sealed class BridgeClientTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task Publish_is_acked_and_arrives_once_on_another_clients_room_enumerable(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Presence:Rooms:0", "pr.>"));
        var room = Names.Room("pr");
        await using var sender = Client(worker.WebSocketUrl, format);
        await using var receiver = Client(worker.HttpUrl, format); // the base URL works too (→ ws://host/ws)
        await Task.WhenAll(sender.ConnectAsync(), receiver.ConnectAsync());
        var subscription = await receiver.JoinAsync(room);
        Assert.NotNull(subscription.LastJoin);
        Assert.False(subscription.LastJoin!.Truncated);

        var first = await sender.PublishAsync(room, "chat.message", new { text = "hi", n = 1 });
        var second = await sender.PublishAsync(room, "chat.message", new { text = "ünïcode", n = 2 }, id: "fixed-id-2");
        var binary = await sender.PublishBinaryAsync(room, "sensor.raw", new byte[] { 0, 1, 2, 250, 255 });
        Assert.Equal(room, first.Room);
        Assert.Equal("fixed-id-2", second.Id);
        Assert.True(first.Seq < second.Seq && second.Seq < binary.Seq);
        Assert.False(first.Duplicate);

        // A retry with the same id is stored once: the ack carries the original seq.
        var retry = await sender.PublishAsync(room, "chat.message", new { text = "ünïcode", n = 2 }, id: "fixed-id-2");
        Assert.True(retry.Duplicate);
        Assert.Equal(second.Seq, retry.Seq);

        var messages = await ReadAsync(subscription, 3);
        Assert.Equal([first.Seq, second.Seq, binary.Seq], messages.Select(m => m.Seq));
        Assert.Equal(first.Id, messages[0].Id);
        Assert.Equal("hi", messages[0].Payload!.Value.GetProperty("text").GetString());
        Assert.Equal(2, messages[1].PayloadAs<JsonElement>().GetProperty("n").GetInt32());
        Assert.Equal("ünïcode", messages[1].Payload!.Value.GetProperty("text").GetString());
        Assert.Equal("anonymous", messages[0].From);
        Assert.Equal("sensor.raw", messages[2].Type);
        Assert.Null(messages[2].Payload);
        Assert.Equal(new byte[] { 0, 1, 2, 250, 255 }, messages[2].BinaryPayload!.Value.ToArray());
        Assert.True(messages[0].Timestamp > DateTimeOffset.UtcNow.AddMinutes(-1));
        await AssertNothingMoreAsync(subscription);

        var state = await receiver.SyncAsync(room, limit: 100);
        Assert.Equal(binary.Seq, state.Seq);
        Assert.Equal([first.Seq, second.Seq, binary.Seq], state.Messages.Where(m => m.Type != MessageTypes.PresenceUpdate).Select(m => m.Seq));
        Assert.Equal(new byte[] { 0, 1, 2, 250, 255 }, state.Messages[^1].BinaryPayload!.Value.ToArray());

        var present = await receiver.QueryPresenceAsync(room);
        Assert.Equal("anonymous", Assert.Single(present).User);

        // Leaving ends the enumerable.
        await subscription.DisposeAsync();
        await foreach (var _ in subscription.ReadAllAsync().WithCancellation(new CancellationTokenSource(Timeout).Token))
        {
            Assert.Fail("no message after leaving");
        }
    }

    [Fact]
    public async Task A_worker_restart_1012_moves_the_client_to_another_worker_and_the_room_yields_every_message_once_in_order()
    {
        var spread = ("Bridge:Shutdown:ReconnectSpread", "00:00:00.300");
        var workerA = await WorkerHost.StartAsync(nats.Server, spread);
        await using var workerB = await WorkerHost.StartAsync(nats.Server, spread);
        var room = Names.Room("fo");
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var reader = Client(null, BridgeFormat.MessagePack, o => o.Uris = [workerA.WebSocketUrl, workerB.WebSocketUrl]);
        reader.StateChanged += (_, e) => states.Enqueue(e);
        await reader.ConnectAsync();
        Assert.Equal(workerA.Id, reader.ServerId);
        var subscription = await reader.JoinAsync(room);

        await using var publisher = Client(workerB.WebSocketUrl, BridgeFormat.Json);
        await publisher.ConnectAsync();
        const int Total = 150;
        var acks = new List<Ack>();
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < Total; i++)
            {
                acks.Add(await publisher.PublishAsync(room, "seq.test", new { n = i }));
                await Task.Delay(4);
            }
        });

        await Eventually.TrueAsync(() => acks.Count >= 40, Timeout, "the publisher got going");
        await workerA.DisposeAsync(); // 1012 with reconnect_after_ms ≤ 300
        await publishing.WaitAsync(Timeout);

        var messages = await ReadAsync(subscription, Total);
        Assert.Equal(acks.Select(a => a.Seq), messages.Select(m => m.Seq));
        Assert.Equal(Enumerable.Range(0, Total), messages.Select(m => m.Payload!.Value.GetProperty("n").GetInt32()));
        await AssertNothingMoreAsync(subscription);

        Assert.Equal(workerB.Id, reader.ServerId);
        var restart = Assert.Single(states, s => s.State == ConnectionState.Reconnecting);
        Assert.Equal(CloseCodes.ServiceRestart, restart.CloseCode);
        var announced = int.Parse(restart.Reason!.Split("reconnect_after_ms=")[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(announced, 0, 300);
        Assert.Equal(TimeSpan.FromMilliseconds(announced), restart.Delay); // the server's spread delay, not backoff
        Assert.True(subscription.LastJoin!.Replayed >= 0 && !subscription.LastJoin.Truncated);
        Assert.Equal(ConnectionState.Open, states.Last().State);
    }

    [Fact]
    public async Task Publishes_made_while_disconnected_are_queued_then_stored_once_in_order()
    {
        var workerA = await WorkerHost.StartAsync(nats.Server, ("Bridge:Shutdown:ReconnectSpread", "00:00:00"));
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("q");
        var target = workerA.WebSocketUrl;
        await using var client = Client(null, BridgeFormat.Json, o =>
        {
            o.UriProvider = _ => ValueTask.FromResult(Volatile.Read(ref target));
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
            o.MaxQueuedPublishes = 25;
        });
        await client.ConnectAsync();
        await using var watcher = Client(workerB.WebSocketUrl, BridgeFormat.Json);
        await watcher.ConnectAsync();
        var watched = await watcher.JoinAsync(room);

        await workerA.DisposeAsync(); // the client's worker is gone and its URL refuses connections
        await Eventually.TrueAsync(() => client.State == ConnectionState.Reconnecting, Timeout);
        var publishes = Enumerable.Range(0, 25).Select(i => client.PublishAsync(room, "queued.message", new { n = i })).ToList();
        var overflow = await Assert.ThrowsAsync<BridgeException>(() => client.PublishAsync(room, "queued.message", new { n = 99 }));
        Assert.Equal("queue_full", overflow.Code);
        await Task.Delay(300);
        Assert.Equal(ConnectionState.Reconnecting, client.State);
        Assert.All(publishes, p => Assert.False(p.IsCompleted));
        Assert.Equal(25, client.PendingPublishes);

        Volatile.Write(ref target, workerB.WebSocketUrl);
        var acks = await Task.WhenAll(publishes).WaitAsync(Timeout);
        Assert.Equal(acks.Select(a => a.Seq).Order(), acks.Select(a => a.Seq)); // stored in the order published
        Assert.All(acks, a => Assert.False(a.Duplicate));
        Assert.Equal(0, client.PendingPublishes);

        var delivered = await ReadAsync(watched, 25);
        Assert.Equal(Enumerable.Range(0, 25), delivered.Select(m => m.Payload!.Value.GetProperty("n").GetInt32()));
        var stored = await watcher.SyncAsync(room, limit: 100);
        Assert.Equal(acks.Select(a => a.Seq), stored.Messages.Select(m => m.Seq)); // each stored once
    }

    [Fact]
    public async Task Token_expiry_4001_makes_the_client_fetch_a_new_token_and_resume()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var room = Names.Room("tk");
        var issued = 0;
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = Client(worker.WebSocketUrl, BridgeFormat.Json, o =>
        {
            o.TokenProvider = _ =>
            {
                // The first token runs out within ~2-3 s (exp has whole seconds), the next ones last.
                var lifetime = Interlocked.Increment(ref issued) == 1 ? TimeSpan.FromSeconds(3) : TimeSpan.FromMinutes(10);
                return ValueTask.FromResult<string?>(tokens.Create("alice", expiresIn: lifetime, subRooms: [room]));
            };
            o.RefreshBeforeExpiry = TimeSpan.Zero; // no auth.refresh: let the server close with 4001
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();
        Assert.Equal("alice", client.User);
        var subscription = await client.JoinAsync(room);

        await using var publisher = Client(worker.WebSocketUrl, BridgeFormat.Json, o =>
            o.TokenProvider = _ => ValueTask.FromResult<string?>(tokens.Create("bob", pubRooms: [room])));
        await publisher.ConnectAsync();
        var before = await publisher.PublishAsync(room, "chat.message", new { text = "before" });
        await Eventually.TrueAsync(() => states.Any(s => s.CloseCode == CloseCodes.TokenExpired), TimeSpan.FromSeconds(10), "closed with 4001");
        var during = await publisher.PublishAsync(room, "chat.message", new { text = "during" }); // maybe while reconnecting
        await Eventually.TrueAsync(() => client.State == ConnectionState.Open, Timeout);
        var after = await publisher.PublishAsync(room, "chat.message", new { text = "after" });

        var messages = await ReadAsync(subscription, 3);
        Assert.Equal([before.Seq, during.Seq, after.Seq], messages.Select(m => m.Seq));
        Assert.Equal("bob", messages[0].From);
        Assert.Equal(2, Volatile.Read(ref issued));
        var reconnect = Assert.Single(states, s => s.State == ConnectionState.Reconnecting);
        Assert.Equal(CloseCodes.TokenExpired, reconnect.CloseCode);
        Assert.Equal(TimeSpan.Zero, reconnect.Delay); // a new token: at once, no backoff
    }

    [Fact]
    public async Task A_token_is_renewed_with_auth_refresh_before_it_expires_and_the_connection_stays()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var issued = 0;
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = Client(worker.WebSocketUrl, BridgeFormat.MessagePack, o =>
        {
            o.TokenProvider = _ =>
            {
                Interlocked.Increment(ref issued);
                return ValueTask.FromResult<string?>(tokens.Create("carol", expiresIn: TimeSpan.FromSeconds(3)));
            };
            o.RefreshBeforeExpiry = TimeSpan.FromSeconds(2);
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();
        var connection = client.ConnectionId;

        // Past the first token's expiry (≤ 3 s): without auth.refresh the server would have closed with 4001.
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.True(Volatile.Read(ref issued) >= 2, $"tokens issued: {issued}");
        Assert.Equal([ConnectionState.Connecting, ConnectionState.Open], states.Select(s => s.State));
        Assert.Equal(connection, client.ConnectionId);
        var ack = await client.PublishAsync("user.carol", "note.saved", new { ok = true });
        Assert.True(ack.Seq > 0);
    }

    [Fact]
    public async Task A_refused_token_without_a_new_one_closes_the_client_for_good()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var expired = tokens.Create("dave", expiresIn: TimeSpan.FromMinutes(-5), notBefore: DateTime.UtcNow.AddMinutes(-10));
        var asked = 0;
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = Client(worker.WebSocketUrl, BridgeFormat.Json, o => o.TokenProvider = _ =>
        {
            Interlocked.Increment(ref asked);
            return ValueTask.FromResult<string?>(expired);
        });
        client.StateChanged += (_, e) => states.Enqueue(e);

        var refused = await Assert.ThrowsAsync<BridgeException>(() => client.ConnectAsync().WaitAsync(Timeout));
        Assert.Equal(ErrorCodes.Unauthorized, refused.Code);
        Assert.Equal(ConnectionState.Closed, client.State);
        Assert.Equal(401, states.Last().HttpStatus);
        Assert.Equal(2, Volatile.Read(ref asked)); // once to connect, once after the 401: same token, so no retry
        Assert.Equal(ErrorCodes.Unauthorized, (await Assert.ThrowsAsync<BridgeException>(() => client.PublishAsync("user.dave", "a.b", 1))).Code);
    }

    [Fact]
    public async Task A_resume_from_a_position_the_room_does_not_hold_is_reported_as_truncated()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("tr");
        await using var client = Client(worker.WebSocketUrl, BridgeFormat.Json);
        await client.ConnectAsync();
        var kept = await client.PublishAsync(room, "chat.message", new { text = "kept" });
        var elsewhere = await client.PublishAsync(Names.Room("other"), "chat.message", new { text = "another room" });

        var subscription = await client.JoinAsync(room, since: elsewhere.Seq); // a seq that is not a message of this room
        Assert.True(subscription.LastJoin!.Truncated);
        var state = await client.SyncAsync(room, limit: 10);
        Assert.Equal(kept.Seq, Assert.Single(state.Messages).Seq);

        // A resume from a stored position of the room is not truncated, and replays what came after it.
        await using var other = Client(worker.WebSocketUrl, BridgeFormat.Json);
        await other.ConnectAsync();
        var later = await other.PublishAsync(room, "chat.message", new { text = "later" });
        var resumed = await other.JoinAsync(room, since: kept.Seq);
        Assert.False(resumed.LastJoin!.Truncated);
        Assert.Equal(1, resumed.LastJoin.Replayed);
        Assert.Equal(later.Seq, (await ReadAsync(resumed, 1))[0].Seq);
    }

    [Fact]
    public async Task Reconnect_attempts_back_off_exponentially_with_full_jitter()
    {
        // A loopback "worker" that answers every upgrade with 503 (as a worker at MaxConnections does).
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var accepts = new ConcurrentQueue<long>();
        using var stop = new CancellationTokenSource(Timeout);
        var accepting = Task.Run(async () =>
        {
            try
            {
                var buffer = new byte[8192];
                while (true)
                {
                    using var socket = await listener.AcceptSocketAsync(stop.Token);
                    accepts.Enqueue(System.Diagnostics.Stopwatch.GetTimestamp());
                    var read = 0;
                    while (!System.Text.Encoding.ASCII.GetString(buffer, 0, read).Contains("\r\n\r\n", StringComparison.Ordinal))
                    {
                        read += await socket.ReceiveAsync(buffer.AsMemory(read), stop.Token);
                    }

                    await socket.SendAsync("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), stop.Token);
                    socket.Shutdown(System.Net.Sockets.SocketShutdown.Both);
                }
            }
            catch (OperationCanceledException)
            {
            }
        });
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        var port = ((System.Net.IPEndPoint)listener.LocalEndpoint).Port;
        await using (var client = Client(new Uri($"ws://127.0.0.1:{port}/ws"), BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(40);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
            o.Random = () => 0.99;
        }))
        {
            client.StateChanged += (_, e) => states.Enqueue(e);
            _ = client.ConnectAsync();
            await Eventually.TrueAsync(() => accepts.Count >= 6, Timeout);
        }

        await stop.CancelAsync();
        await accepting;

        // Attempt n waits floor(random · min(max, min·2ⁿ)): 39, 79, 158, then capped at 198 ms.
        var delays = states.Where(s => s.State == ConnectionState.Reconnecting).Select(s => s.Delay!.Value.TotalMilliseconds).Take(5).ToArray();
        Assert.Equal([39, 79, 158, 198, 198], delays);
        Assert.Equal([0, 1, 2, 3, 4], states.Where(s => s.State == ConnectionState.Reconnecting).Select(s => s.Attempt).Take(5));
        Assert.All(states.Where(s => s.State == ConnectionState.Reconnecting), s => Assert.Equal(503, s.HttpStatus));
        var gaps = accepts.Zip(accepts.Skip(1), (a, b) => System.Diagnostics.Stopwatch.GetElapsedTime(a, b).TotalMilliseconds).Take(5).ToArray();
        for (var i = 0; i < gaps.Length; i++)
        {
            Assert.True(gaps[i] >= delays[i] - 5, $"attempt {i + 1} came {gaps[i]:F0} ms after the previous one, before its delay of {delays[i]} ms");
        }
    }

    [Fact]
    public void Backoff_delays_stay_within_their_ceiling_and_the_restart_delay_is_read_from_the_close_reason()
    {
        var min = TimeSpan.FromMilliseconds(500);
        var max = TimeSpan.FromSeconds(20);
        for (var attempt = 0; attempt < 40; attempt++)
        {
            var ceiling = Math.Min(max.TotalMilliseconds, min.TotalMilliseconds * Math.Pow(2, attempt));
            Assert.Equal(TimeSpan.Zero, Bridge.Client.Protocol.Backoff.Delay(attempt, min, max, 0));
            var high = Bridge.Client.Protocol.Backoff.Delay(attempt, min, max, 0.999999).TotalMilliseconds;
            Assert.InRange(high, ceiling - 1, ceiling);
        }

        Assert.Equal(TimeSpan.FromMilliseconds(1234), Bridge.Client.Protocol.Backoff.ReconnectAfter("service restart; reconnect_after_ms=1234"));
        Assert.Null(Bridge.Client.Protocol.Backoff.ReconnectAfter("service restart"));
        Assert.Null(Bridge.Client.Protocol.Backoff.ReconnectAfter(null));
    }

    private static BridgeClient Client(Uri? uri, BridgeFormat format, Action<BridgeClientOptions>? configure = null)
    {
        var options = new BridgeClientOptions { Uri = uri, Format = format };
        configure?.Invoke(options);
        return new BridgeClient(options);
    }

    private static async Task<List<BridgeMessage>> ReadAsync(RoomSubscription subscription, int count)
    {
        using var cts = new CancellationTokenSource(Timeout);
        var messages = new List<BridgeMessage>();
        try
        {
            await foreach (var message in subscription.ReadAllAsync(cts.Token))
            {
                if (message.Type == MessageTypes.PresenceUpdate)
                {
                    continue;
                }

                messages.Add(message);
                if (messages.Count == count)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"got {messages.Count} of {count} messages: {string.Join(", ", messages.Select(m => m.Seq))}");
        }

        return messages;
    }

    private static async Task AssertNothingMoreAsync(RoomSubscription subscription)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        try
        {
            await foreach (var message in subscription.ReadAllAsync(cts.Token))
            {
                if (message.Type != MessageTypes.PresenceUpdate)
                {
                    Assert.Fail($"unexpected extra message {message}");
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
