using System.Text.Json;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>The .NET client's join options (pattern, <c>latest</c>, <c>maxRate</c>) against real workers and nats-server.</summary>
public sealed class BridgeClientPatternTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_pattern_yields_every_matching_room_s_messages_with_their_room_and_resumes_on_another_worker_once_each_in_order(BridgeFormat format)
    {
        var spread = ("Bridge:Shutdown:ReconnectSpread", "00:00:00.300");
        var workerA = await WorkerHost.StartAsync(nats.Server, spread);
        await using var workerB = await WorkerHost.StartAsync(nats.Server, spread);
        var site = Names.Room("cs");
        var rooms = new[] { $"{site}.a", $"{site}.b", $"{site}.c.d" };
        var other = Names.Room("other");
        await using var reader = NewClient(null, format, o => o.Uris = [workerA.WebSocketUrl, workerB.WebSocketUrl]);
        await reader.ConnectAsync();
        Assert.Equal(workerA.Id, reader.ServerId);
        var subscription = await reader.JoinAsync($"{site}.>", new RoomJoinOptions());
        Assert.True(subscription.IsPattern);
        Assert.Equal($"{site}.>", subscription.LastJoin!.Room);

        // Messages of the three rooms (and of a room the pattern does not match) before, during and after the worker
        // goes away: the client resumes the pattern on the other worker from its position.
        var stored = new List<(string Room, ulong Seq)>();
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; i < 60; i++)
            {
                stored.AddRange(await Store.PublishAsync(nats.Server, [rooms[i % 3], other], offset: 2 * i));
                await Task.Delay(10);
            }
        });
        await Eventually.TrueAsync(() => stored.Count >= 20, WaitLimit, "the publisher got going");
        await workerA.DisposeAsync(); // 1012: the client moves to worker B
        await publishing.WaitAsync(WaitLimit);

        var expected = stored.Where(s => s.Room != other).ToList();
        var messages = await ReadAsync(subscription, expected.Count);
        Assert.Equal(expected, messages.Select(m => (m.Room, m.Seq)));
        Assert.Equal(workerB.Id, reader.ServerId);
        Assert.Equal(expected[^1].Seq, subscription.Position);
        Assert.False(subscription.LastJoin!.Truncated);

        // Live on the new worker, nothing repeated.
        var live = await Store.PublishAsync(nats.Server, [rooms[2], other, rooms[0]]);
        Assert.Equal([live[0], live[2]], (await ReadAsync(subscription, 2)).Select(m => (m.Room, m.Seq)));
    }

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task Latest_on_a_pattern_yields_each_room_s_newest_message_before_the_join_returns_then_live(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("lt");

        // More rooms than one batched read returns: the worker reads them a list at a time, so the latest values come
        // out of seq order, and none may be dropped as "older than the position".
        var rooms = Enumerable.Range(0, 1100).Select(i => $"{site}.d{i}").ToList();
        await Store.PublishManyAsync(nats.Server, [.. rooms, .. rooms]);
        var newest = (await Store.PublishAsync(nats.Server, rooms.Take(10))).ToDictionary(s => s.Room, s => s.Seq);
        await using var client = NewClient(worker.WebSocketUrl, format, o => o.RoomBufferCapacity = 2048);
        await client.ConnectAsync();

        var subscription = await client.JoinAsync($"{site}.*", new RoomJoinOptions { Latest = true });
        Assert.Equal(1100, subscription.LastJoin!.Latest);
        var latest = await ReadAsync(subscription, 1100);
        Assert.Equal(rooms.Order(), latest.Select(m => m.Room).Order());
        Assert.All(newest, n => Assert.Equal(n.Value, Assert.Single(latest, m => m.Room == n.Key).Seq));
        Assert.Equal(subscription.LastJoin.Seq, subscription.Position);

        var live = await Store.PublishAsync(nats.Server, [rooms[5], rooms[39]]);
        Assert.Equal(live, (await ReadAsync(subscription, 2)).Select(m => (m.Room, m.Seq)));
    }

    [Fact]
    public async Task A_conflated_join_gets_at_most_about_its_rate_and_always_ends_on_the_last_value()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("cf");
        await Store.PublishAsync(nats.Server, [room]);
        await using var client = NewClient(worker.WebSocketUrl, BridgeFormat.MessagePack);
        await client.ConnectAsync();
        var subscription = await client.JoinAsync(room, new RoomJoinOptions { MaxRate = 5, Latest = true });
        Assert.Null(subscription.Position);
        Assert.Equal(1, subscription.LastJoin!.Latest);

        // About two seconds of publishing, as fast as one publisher goes (hundreds a second).
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var published = new List<(string Room, ulong Seq)>();
        while (clock.Elapsed < TimeSpan.FromSeconds(2))
        {
            published.AddRange(await Store.PublishAsync(nats.Server, Enumerable.Repeat(room, 20), offset: published.Count + 1));
        }

        var received = new List<BridgeMessage>();
        using var cts = new CancellationTokenSource(WaitLimit);
        await foreach (var message in subscription.ReadAllAsync(cts.Token))
        {
            received.Add(message);
            if (message.Seq == published[^1].Seq)
            {
                break;
            }
        }

        var elapsed = clock.Elapsed.TotalSeconds;
        Assert.True(published.Count > 100, $"only {published.Count} published: the rate was never exceeded");

        // At most 5 a second (plus the latest value and one of slack for timer edges); newest first, never a stale one.
        Assert.True(
            received.Count >= 3 && received.Count <= 2 + (int)Math.Ceiling(elapsed * 5),
            $"{received.Count} received of {published.Count} published in {elapsed:F2} s: not about 5 a second");
        Assert.Equal(received.Select(m => m.Seq).Order(), received.Select(m => m.Seq));
        Assert.Equal(published[^1].Seq, received[^1].Seq);
        Assert.Null(subscription.Position);
    }

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_conflated_room_and_pattern_rejoin_with_since_after_a_reconnect_and_no_value_comes_twice(BridgeFormat format)
    {
        // docs/protocol.md §4, conflation: a since from a conflated position sends each room's newest message after it.
        // A room's position is its last value (its values come in seq order); a pattern's its last room.joined.
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        var room = Names.Room("cfr");
        var site = Names.Room("cfs");
        var first = await Store.PublishAsync(nats.Server, [room, $"{site}.a", $"{site}.b"]);
        await using var client = NewClient(relay.Url, format, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
        });
        await using var publisher = NewClient(worker.WebSocketUrl, BridgeFormat.Json);
        await Task.WhenAll(client.ConnectAsync(), publisher.ConnectAsync());
        var conflated = await client.JoinAsync(room, new RoomJoinOptions { Latest = true, MaxRate = 20 });
        var pattern = await client.JoinAsync($"{site}.*", new RoomJoinOptions { Latest = true, MaxRate = 20 });
        Assert.Equal(first[0].Seq, Assert.Single(await ReadAsync(conflated, 1)).Seq);
        Assert.Equal(first.Skip(1).Select(s => s.Seq), (await ReadAsync(pattern, 2)).Select(m => m.Seq).Order());
        var second = await publisher.PublishAsync(room, "t.second", new { n = 2 });
        Assert.Equal(second.Seq, Assert.Single(await ReadAsync(conflated, 1)).Seq);
        var patternJoined = pattern.LastJoin!.Seq;
        var rejoined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var rejoins = 0;
        EventHandler<RoomJoinInfo> onJoined = (_, _) =>
        {
            if (Interlocked.Increment(ref rejoins) == 2)
            {
                rejoined.TrySetResult();
            }
        };
        conflated.Joined += onJoined;
        pattern.Joined += onJoined;

        relay.Drop();
        await rejoined.Task.WaitAsync(WaitLimit);

        // The rejoin asks for values after those delivered, never with latest (the worker would send every room's).
        var entries = new Dictionary<string, JsonElement>();
        foreach (var join in relay.Sent(2).Where(f => f.GetProperty("type").GetString() == MessageTypes.RoomJoin))
        {
            if (join.TryGetProperty("room", out var single))
            {
                entries[single.GetString()!] = join.GetProperty("payload");
                continue;
            }

            foreach (var entry in join.GetProperty("payload").GetProperty("rooms").EnumerateArray())
            {
                entries[entry.GetProperty("room").GetString()!] = entry;
            }
        }

        Assert.Equal(second.Seq, entries[room].GetProperty("since").GetUInt64());
        Assert.Equal(patternJoined, entries[$"{site}.*"].GetProperty("since").GetUInt64());
        Assert.All(entries.Values, e => Assert.False(e.TryGetProperty("latest", out _)));

        // Nothing came again: the next value of each is the one published after the rejoin.
        var third = await publisher.PublishAsync(room, "t.third", new { n = 3 });
        var b2 = await publisher.PublishAsync($"{site}.b", "t.third", new { n = 3 });
        Assert.Equal(third.Seq, Assert.Single(await ReadAsync(conflated, 1)).Seq);
        Assert.Equal(b2.Seq, Assert.Single(await ReadAsync(pattern, 1)).Seq);
        Assert.Null(conflated.Position); // still no position of its own: conflated messages are not de-duplicated
    }

    [Fact]
    public async Task A_conflated_pattern_rejoins_from_its_room_joined_so_a_rooms_value_still_owed_when_another_rooms_later_one_came_is_not_lost()
    {
        // A pattern's rooms go at their own pace: a2 waits for room a's interval (5 s at 0.2/s) while b1, stored after
        // it, goes at once (room b's interval is free). A rejoin from b1's seq would never send a2 (it is before it);
        // from room.joined's seq, a2 is room a's newest after it and comes (docs/protocol.md §4, conflation).
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        var site = Names.Room("cfo");
        await using var client = NewClient(relay.Url, BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
        });
        await using var publisher = NewClient(worker.WebSocketUrl, BridgeFormat.Json);
        await Task.WhenAll(client.ConnectAsync(), publisher.ConnectAsync());
        var pattern = await client.JoinAsync($"{site}.*", new RoomJoinOptions { MaxRate = 0.2 });
        var a1 = await publisher.PublishAsync($"{site}.a", "t.v", new { v = "a1" });
        Assert.Equal(a1.Seq, Assert.Single(await ReadAsync(pattern, 1)).Seq);
        var a2 = await publisher.PublishAsync($"{site}.a", "t.v", new { v = "a2" }); // owed: room a's interval runs
        var b1 = await publisher.PublishAsync($"{site}.b", "t.v", new { v = "b1" });
        Assert.Equal(b1.Seq, Assert.Single(await ReadAsync(pattern, 1)).Seq);
        var rejoined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        pattern.Joined += (_, _) => rejoined.TrySetResult();

        relay.Drop(); // well within room a's 5 s: a2 was not sent on this connection
        await rejoined.Task.WaitAsync(WaitLimit);

        // a2 comes (room a's newest after the pattern's room.joined), and b1 once more (room b changed since then).
        var again = await ReadAsync(pattern, 2);
        Assert.Equal([a2.Seq, b1.Seq], again.Select(m => m.Seq).Order());
    }

    [Fact]
    public async Task Overlapping_joins_and_bad_options_are_refused_by_the_client_and_a_wider_pattern_than_granted_by_the_server()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        await using var client = NewClient(worker.WebSocketUrl, BridgeFormat.Json, o =>
            o.TokenProvider = _ => ValueTask.FromResult<string?>(tokens.Create("carol", subRooms: ["devices.site-3.*", "devices.site-4"])));
        await client.ConnectAsync();

        var denied = await Assert.ThrowsAsync<BridgeException>(() => client.JoinAsync("devices.>", new RoomJoinOptions()));
        Assert.Equal(ErrorCodes.Forbidden, denied.Code);
        var pattern = await client.JoinAsync("devices.site-3.*", new RoomJoinOptions { Latest = true });

        // Shares rooms with the pattern held: refused before anything is sent.
        var overlap = await Assert.ThrowsAsync<BridgeException>(() => client.JoinAsync("devices.site-3.d1"));
        Assert.Equal("overlapping_join", overlap.Code);
        Assert.Same(pattern, await client.JoinAsync("devices.site-3.*")); // the same name is the same join
        await Assert.ThrowsAsync<ArgumentException>(() => client.JoinAsync("devices.>.x", new RoomJoinOptions()));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.JoinAsync("devices.site-4", new RoomJoinOptions { MaxRate = 0 }));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => client.JoinAsync("devices.site-4", new RoomJoinOptions { MaxRate = 1001 }));
        await Assert.ThrowsAsync<ArgumentException>(() => client.JoinAsync("devices.site-4", new RoomJoinOptions { MaxRate = 1, Since = 3 }));

        // Once the pattern is left, a room it matched can be joined.
        await pattern.DisposeAsync();
        var room = await client.JoinAsync("devices.site-3.d1");
        Assert.False(room.IsPattern);
    }
}
