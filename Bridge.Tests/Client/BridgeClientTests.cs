using System.Collections.Concurrent;
using System.Text.Json;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Client;

/// <summary>The .NET client (Bridge.Client) against real workers on Kestrel and a real nats-server.</summary>
public sealed class BridgeClientTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    internal static readonly TimeSpan WaitLimit = TimeSpan.FromSeconds(20);

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task Publish_is_acked_and_arrives_once_on_another_clients_room_enumerable(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Presence:Rooms:0", "pr.>"));
        var room = Names.Room("pr");
        await using var sender = NewClient(worker.WebSocketUrl, format);
        await using var receiver = NewClient(worker.HttpUrl, format); // the base URL works too (→ ws://host/ws)
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
        await foreach (var _ in subscription.ReadAllAsync().WithCancellation(new CancellationTokenSource(WaitLimit).Token))
        {
            Assert.Fail("no message after leaving");
        }
    }

    [Fact]
    public async Task A_msgpack_publish_reaches_msgpack_clients_byte_for_byte_and_json_clients_as_its_json_rendering()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("mp");
        await using var sender = NewClient(worker.WebSocketUrl, BridgeFormat.MessagePack);
        await using var pack = NewClient(worker.WebSocketUrl, BridgeFormat.MessagePack);
        await using var json = NewClient(worker.WebSocketUrl, BridgeFormat.Json);
        await Task.WhenAll(sender.ConnectAsync(), pack.ConnectAsync(), json.ConnectAsync());
        var packRoom = await pack.JoinAsync(room);
        var jsonRoom = await json.JoinAsync(room);

        // {"at": timestamp 2026-01-01T00:00:01.5Z (64-bit form), "v": 21.5}
        var payload = Convert.FromHexString("82a26174d7ff773594006955b901a176cb4035800000000000");
        var ack = await sender.PublishMessagePackAsync(room, "sensor.reading", payload);
        Assert.Throws<ArgumentException>(() => { _ = sender.PublishMessagePackAsync(room, "sensor.reading", Convert.FromHexString("cb7ff8000000000000")); });

        var received = Assert.Single(await ReadAsync(packRoom, 1));
        Assert.Equal(ack.Seq, received.Seq);
        Assert.Equal(payload, received.MessagePackPayload!.Value.ToArray());
        Assert.Equal("2026-01-01T00:00:01.5Z", received.Payload!.Value.GetProperty("at").GetString());
        var rendered = Assert.Single(await ReadAsync(jsonRoom, 1));
        Assert.Null(rendered.MessagePackPayload);
        Assert.Null(rendered.BinaryPayload);
        Assert.Equal("2026-01-01T00:00:01.5Z", rendered.Payload!.Value.GetProperty("at").GetString());
        Assert.Equal(21.5, rendered.Payload!.Value.GetProperty("v").GetDouble());
    }

    [Fact]
    public async Task A_worker_restart_1012_moves_the_client_to_another_worker_and_the_room_yields_every_message_once_in_order()
    {
        var spread = ("Bridge:Shutdown:ReconnectSpread", "00:00:00.300");
        var workerA = await WorkerHost.StartAsync(nats.Server, spread);
        await using var workerB = await WorkerHost.StartAsync(nats.Server, spread);
        var room = Names.Room("fo");
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var reader = NewClient(null, BridgeFormat.MessagePack, o => o.Uris = [workerA.WebSocketUrl, workerB.WebSocketUrl]);
        reader.StateChanged += (_, e) => states.Enqueue(e);
        await reader.ConnectAsync();
        Assert.Equal(workerA.Id, reader.ServerId);
        var subscription = await reader.JoinAsync(room);

        await using var publisher = NewClient(workerB.WebSocketUrl, BridgeFormat.Json);
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

        await Eventually.TrueAsync(() => acks.Count >= 40, WaitLimit, "the publisher got going");
        await workerA.DisposeAsync(); // 1012 with reconnect_after_ms ≤ 300
        await publishing.WaitAsync(WaitLimit);

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
        await using var client = NewClient(null, BridgeFormat.Json, o =>
        {
            o.UriProvider = _ => ValueTask.FromResult(Volatile.Read(ref target));
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
            o.MaxQueuedPublishes = 25;
        });
        await client.ConnectAsync();
        await using var watcher = NewClient(workerB.WebSocketUrl, BridgeFormat.Json);
        await watcher.ConnectAsync();
        var watched = await watcher.JoinAsync(room);

        await workerA.DisposeAsync(); // the client's worker is gone and its URL refuses connections
        await Eventually.TrueAsync(() => client.State == ConnectionState.Reconnecting, WaitLimit);
        var publishes = Enumerable.Range(0, 25).Select(i => client.PublishAsync(room, "queued.message", new { n = i })).ToList();
        var overflow = await Assert.ThrowsAsync<BridgeException>(() => client.PublishAsync(room, "queued.message", new { n = 99 }));
        Assert.Equal("queue_full", overflow.Code);
        await Task.Delay(300);
        Assert.Equal(ConnectionState.Reconnecting, client.State);
        Assert.All(publishes, p => Assert.False(p.IsCompleted));
        Assert.Equal(25, client.PendingPublishes);

        Volatile.Write(ref target, workerB.WebSocketUrl);
        var acks = await Task.WhenAll(publishes).WaitAsync(WaitLimit);
        Assert.Equal(acks.Select(a => a.Seq).Order(), acks.Select(a => a.Seq)); // stored in the order published
        Assert.All(acks, a => Assert.False(a.Duplicate));
        Assert.Equal(0, client.PendingPublishes);

        var delivered = await ReadAsync(watched, 25);
        Assert.Equal(Enumerable.Range(0, 25), delivered.Select(m => m.Payload!.Value.GetProperty("n").GetInt32()));
        var stored = await watcher.SyncAsync(room, limit: 100);
        Assert.Equal(acks.Select(a => a.Seq), stored.Messages.Select(m => m.Seq)); // each stored once
    }

    [Fact]
    public async Task A_resume_from_a_position_the_room_does_not_hold_is_reported_as_truncated()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("tr");
        await using var client = NewClient(worker.WebSocketUrl, BridgeFormat.Json);
        await client.ConnectAsync();
        var kept = await client.PublishAsync(room, "chat.message", new { text = "kept" });
        var elsewhere = await client.PublishAsync(Names.Room("other"), "chat.message", new { text = "another room" });

        var subscription = await client.JoinAsync(room, since: elsewhere.Seq); // a seq that is not a message of this room
        Assert.True(subscription.LastJoin!.Truncated);
        var state = await client.SyncAsync(room, limit: 10);
        Assert.Equal(kept.Seq, Assert.Single(state.Messages).Seq);

        // A resume from a stored position of the room is not truncated, and replays what came after it.
        await using var other = NewClient(worker.WebSocketUrl, BridgeFormat.Json);
        await other.ConnectAsync();
        var later = await other.PublishAsync(room, "chat.message", new { text = "later" });
        var resumed = await other.JoinAsync(room, since: kept.Seq);
        Assert.False(resumed.LastJoin!.Truncated);
        Assert.Equal(1, resumed.LastJoin.Replayed);
        Assert.Equal(later.Seq, (await ReadAsync(resumed, 1))[0].Seq);
    }

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_resume_from_beyond_the_rooms_end_takes_the_rooms_position_and_delivers_what_comes_next(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("beyond");
        await using var client = NewClient(worker.WebSocketUrl, format);
        await client.ConnectAsync();
        var stored = await client.PublishAsync(room, "chat.message", new { text = "stored" });

        // A position from a stream that was reset (or another deployment): far beyond anything the room holds.
        var subscription = await client.JoinAsync(room, since: stored.Seq + 1_000_000);
        Assert.True(subscription.LastJoin!.Truncated);
        Assert.Equal(stored.Seq, subscription.LastJoin.Seq);
        Assert.Equal(stored.Seq, subscription.Position); // the room's position replaces the untrusted since

        var next = await client.PublishAsync(room, "chat.message", new { text = "next" });
        Assert.Equal(next.Seq, (await ReadAsync(subscription, 1))[0].Seq);
    }

    [Fact]
    public async Task Reconnect_attempts_back_off_exponentially_with_full_jitter()
    {
        // A loopback "worker" that answers every upgrade with 503 (as a worker at MaxConnections does).
        using var listener = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        listener.Start();
        var accepts = new ConcurrentQueue<long>();
        using var stop = new CancellationTokenSource(WaitLimit);
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
        await using (var client = NewClient(new Uri($"ws://127.0.0.1:{port}/ws"), BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(40);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
            o.Random = () => 0.99;
        }))
        {
            client.StateChanged += (_, e) => states.Enqueue(e);
            _ = client.ConnectAsync();
            await Eventually.TrueAsync(() => accepts.Count >= 6, WaitLimit);
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

    [Fact]
    public async Task Readme_example_runs_against_a_real_worker()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        string? token = null; // a JWT from your auth server; null for a development worker (make run)
        var received = new List<BridgeMessage>();
        Ack? stored = null;

        async Task Example()
        {
            // ---- README.md "Use it from .NET" (the URL is the test worker's) ----
            await using var client = new BridgeClient(new BridgeClientOptions
            {
                Uri = worker.WebSocketUrl, // or Uris = [a, b]: the next worker after a drop
                Format = BridgeFormat.MessagePack,
                TokenProvider = ct => ValueTask.FromResult<string?>(token), // a JWT; null in development
            });
            client.StateChanged += (_, e) => Console.WriteLine($"{e.State} {e.CloseCode} {e.Delay}");
            await client.ConnectAsync();

            var room = await client.JoinAsync("demo"); // kept across reconnects, resumed from its last seq
            Console.WriteLine($"joined at seq {room.LastJoin!.Seq}"); // this join; Joined reports each rejoin after a reconnect:
            room.Joined += (_, join) => { if (join.Truncated) Console.WriteLine("history lost: call SyncAsync"); };
            var ack = await client.PublishAsync("demo", "chat.message", new { text = "hi" }); // queued while offline
            Console.WriteLine($"stored as seq {ack.Seq}");

            await foreach (var message in room.ReadAllAsync())
            {
                Console.WriteLine($"#{message.Seq} {message.From}: {message.Payload}");
                received.Add(message);
                if (message.Id == ack.Id) break;
            }

            stored = ack;
        }

        await Example().WaitAsync(WaitLimit);
        Assert.Equal(stored!.Seq, received.Last().Seq);
        Assert.Equal("hi", received.Last().Payload!.Value.GetProperty("text").GetString());

        // The README shows this code: every line of its example is a line of this test.
        var readme = await File.ReadAllTextAsync(Path.Combine(Bridge.Testing.RepoPaths.Root, "README.md"));
        var block = readme[readme.IndexOf("<!-- example: dotnet-client ", StringComparison.Ordinal)..];
        block = block[(block.IndexOf("```csharp", StringComparison.Ordinal) + 9)..];
        block = block[..block.IndexOf("```", StringComparison.Ordinal)];
        var source = await File.ReadAllTextAsync(Path.Combine(Bridge.Testing.RepoPaths.Root, "Bridge.Tests", "Client", "BridgeClientTests.cs"));
        foreach (var line in block.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0))
        {
            Assert.Contains(line.Replace("new Uri(\"ws://127.0.0.1:8080/ws\")", "worker.WebSocketUrl", StringComparison.Ordinal), source, StringComparison.Ordinal);
        }
    }

    internal static BridgeClient NewClient(Uri? uri, BridgeFormat format, Action<BridgeClientOptions>? configure = null)
    {
        var options = new BridgeClientOptions { Uri = uri, Format = format };
        configure?.Invoke(options);
        return new BridgeClient(options);
    }

    internal static async Task<List<BridgeMessage>> ReadAsync(RoomSubscription subscription, int count)
    {
        using var cts = new CancellationTokenSource(WaitLimit);
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
