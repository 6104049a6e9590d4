using Bridge.Client;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>
/// The .NET client joins its rooms on a new connection in batch <c>room.join</c> frames (docs/protocol.md §4, "Batch
/// form"), against a real worker and nats-server, with a <see cref="FrameRelay"/> in between that records the frames.
/// </summary>
public sealed class BridgeClientBatchJoinTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_reconnecting_client_rejoins_its_rooms_in_batch_frames_within_MaxFrameBytes_and_every_room_resumes_without_loss_or_duplicates(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        const int MaxFrameBytes = 1024;
        await using var client = NewClient(relay.Url, format, o =>
        {
            o.MaxFrameBytes = MaxFrameBytes;
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
        });
        await using var publisher = NewClient(worker.WebSocketUrl, BridgeFormat.Json);
        await Task.WhenAll(client.ConnectAsync(), publisher.ConnectAsync());

        // Rooms resuming from a position, a pattern (also resuming) and a conflated room (re-joins from its last value).
        var prefix = Names.Room("bj");
        var rooms = Enumerable.Range(0, 30).Select(i => $"{prefix}.r{i}").ToList();
        var site = Names.Room("bjp");
        var conflated = Names.Room("bjc");
        var subscriptions = await Task.WhenAll(rooms.Select(r => client.JoinAsync(r)));
        var pattern = await client.JoinAsync($"{site}.>", new RoomJoinOptions());
        var rate = await client.JoinAsync(conflated, new RoomJoinOptions { Latest = true, MaxRate = 50 });
        foreach (var room in rooms.Append($"{site}.a").Append(conflated))
        {
            await publisher.PublishAsync(room, "t.before", new { room });
        }

        var before = new Dictionary<string, ulong>();
        foreach (var (room, subscription) in rooms.Append($"{site}.>").Zip(subscriptions.Append(pattern)))
        {
            before[room] = Assert.Single(await ReadAsync(subscription, 1)).Seq;
        }

        var rateBefore = Assert.Single(await ReadAsync(rate, 1));
        Assert.Equal("t.before", rateBefore.Type);

        // The network goes; messages are stored meanwhile; a room is joined live and published to while disconnected.
        relay.Refusing = true;
        relay.Drop();
        await Eventually.TrueAsync(() => client.State == ConnectionState.Reconnecting, WaitLimit);
        var during = new Dictionary<string, ulong>();
        foreach (var room in rooms.Append($"{site}.a").Append(conflated))
        {
            during[room] = (await publisher.PublishAsync(room, "t.during", new { room })).Seq;
        }

        var live = Names.Room("bjl");
        var liveJoin = client.JoinAsync(live);
        var ownPublish = client.PublishAsync(live, "t.own", new { n = 1 });
        relay.Refusing = false;
        var liveSubscription = await liveJoin.WaitAsync(WaitLimit);
        var own = await ownPublish.WaitAsync(WaitLimit);

        // The second connection's joins: batch frames only (no room), each within MaxFrameBytes, every room once with
        // the arguments its single join would send.
        var sized = relay.SentWithSizes(2).Where(f => f.Frame.GetProperty("type").GetString() == MessageTypes.RoomJoin).ToList();
        var joins = sized.Select(f => f.Frame).ToList();
        Assert.True(joins.Count >= 2, $"{joins.Count} join frames: the rooms do not fit in one of {MaxFrameBytes} bytes");
        Assert.All(joins, f => Assert.False(f.TryGetProperty("room", out _)));
        Assert.All(sized, f => Assert.InRange(f.Bytes, 1, MaxFrameBytes));
        var entries = joins.SelectMany(f => f.GetProperty("payload").GetProperty("rooms").EnumerateArray()).ToList();
        var byRoom = entries.ToDictionary(e => e.GetProperty("room").GetString()!);
        Assert.Equal(rooms.Count + 3, entries.Count);
        foreach (var room in rooms)
        {
            Assert.Equal(before[room], byRoom[room].GetProperty("since").GetUInt64());
        }

        Assert.Equal(before[$"{site}.>"], byRoom[$"{site}.>"].GetProperty("since").GetUInt64());
        Assert.Equal(rateBefore.Seq, byRoom[conflated].GetProperty("since").GetUInt64());
        Assert.False(byRoom[conflated].TryGetProperty("latest", out _)); // latest would send the value it has again
        Assert.Equal(50, byRoom[conflated].GetProperty("maxRate").GetDouble());
        Assert.False(byRoom[live].TryGetProperty("since", out _));

        // Every room resumes: the message stored while disconnected, then the next one, nothing twice, nothing lost.
        var after = new Dictionary<string, ulong>();
        foreach (var room in rooms.Append($"{site}.a"))
        {
            after[room] = (await publisher.PublishAsync(room, "t.after", new { room })).Seq;
        }

        foreach (var (room, subscription) in rooms.Zip(subscriptions))
        {
            Assert.Equal([during[room], after[room]], (await ReadAsync(subscription, 2)).Select(m => m.Seq));
        }

        Assert.Equal([during[$"{site}.a"], after[$"{site}.a"]], (await ReadAsync(pattern, 2)).Select(m => m.Seq));
        Assert.Equal(during[conflated], Assert.Single(await ReadAsync(rate, 1)).Seq);

        // The live room was joined before the queued publish went out: the sender receives its own message.
        Assert.Equal(own.Seq, Assert.Single(await ReadAsync(liveSubscription, 1)).Seq);
    }

    [Fact]
    public async Task A_batch_holding_a_room_the_token_does_not_grant_ends_that_room_with_forbidden_naming_it_and_joins_the_rest()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        var granted = Names.Room("bg");
        var refused = Names.Room("bf");
        var rooms = Enumerable.Range(0, 5).Select(i => $"{granted}.r{i}").ToList();
        await using var client = NewClient(relay.Url, BridgeFormat.Json, o =>
            o.TokenProvider = _ => ValueTask.FromResult<string?>(tokens.Create("dana", subRooms: [$"{granted}.*"], pubRooms: [$"{granted}.*"])));

        // Joined before the connection: the welcome joins them all at once, the refused one in the middle.
        var joining = rooms.Take(2).Append(refused).Concat(rooms.Skip(2)).Select(r => client.JoinAsync(r)).ToList();
        await client.ConnectAsync();
        var error = await Assert.ThrowsAsync<BridgeException>(() => joining[2].WaitAsync(WaitLimit));
        var subscriptions = await Task.WhenAll(joining.Where((_, i) => i != 2)).WaitAsync(WaitLimit);

        Assert.Equal(ErrorCodes.Forbidden, error.Code);
        Assert.Contains(refused, error.Message);
        var joins = relay.Sent(1).Where(f => f.GetProperty("type").GetString() == MessageTypes.RoomJoin).ToList();
        var batch = joins[0].GetProperty("payload").GetProperty("rooms").EnumerateArray().Select(e => e.GetProperty("room").GetString()).ToList();
        Assert.Equal(rooms.Take(2).Append(refused).Concat(rooms.Skip(2)), batch);
        // The batch's error names the room: no single join follows.
        Assert.Equal(joins[0].GetProperty("id").GetString(), error.Reference);
        Assert.Single(joins);

        foreach (var (room, subscription) in rooms.Zip(subscriptions))
        {
            var ack = await client.PublishAsync(room, "t.message", new { room });
            Assert.Equal(ack.Seq, Assert.Single(await ReadAsync(subscription, 1)).Seq);
        }
    }

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_client_holding_many_rooms_that_lost_the_grant_of_one_rejoins_the_others_and_only_that_room_ends_without_any_rate_limited_answer(BridgeFormat format)
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings(("Bridge:Auth:ClockSkew", "00:00:00")));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        var granted = Names.Room("bg");
        var revoked = Names.Room("br");
        var rooms = Enumerable.Range(0, 160).Select(i => $"{granted}.r{i}").ToList();
        var first = DateTime.UtcNow;
        var asked = 0;
        await using var client = NewClient(relay.Url, format, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
            o.RefreshBeforeExpiry = TimeSpan.Zero;
            // The first token grants every room and runs out while the client is away; the next one no longer grants one.
            o.TokenProvider = _ => ValueTask.FromResult<string?>(Interlocked.Increment(ref asked) == 1
                ? tokens.Create("erin", expiresIn: TimeSpan.FromSeconds(6), subRooms: [$"{granted}.*", revoked])
                : tokens.Create("erin", subRooms: [$"{granted}.*"], pubRooms: [$"{granted}.*"]));
        });

        // Held before the first connection: its welcome joins all 161 in one batch.
        var joining = rooms.Take(80).Append(revoked).Concat(rooms.Skip(80)).Select(r => client.JoinAsync(r)).ToList();
        await client.ConnectAsync();
        var subscriptions = await Task.WhenAll(joining).WaitAsync(WaitLimit);
        var lost = subscriptions[80];

        // Away until the token ran out: the worker refuses it (401), the next token no longer grants one of the rooms.
        relay.Refusing = true;
        relay.Drop();
        await Eventually.TrueAsync(() => DateTime.UtcNow > first.AddSeconds(8), WaitLimit);
        relay.Refusing = false;
        await Eventually.TrueAsync(() => relay.Connections == 2 && client.State == ConnectionState.Open, WaitLimit);
        var error = await Assert.ThrowsAsync<BridgeException>(() => ReadAsync(lost, 1));
        await Eventually.TrueAsync(() => Joined(relay.Received(2)).Count == rooms.Count, WaitLimit);

        Assert.Equal(ErrorCodes.Forbidden, error.Code);
        var errors = relay.Received(2).Where(f => f.GetProperty("type").GetString() == MessageTypes.Error).ToList();
        var only = Assert.Single(errors);
        Assert.Equal(revoked, only.GetProperty("room").GetString());
        Assert.Equal(rooms.Order(), Joined(relay.Received(2)).Order());
        Assert.All(relay.Sent(2).Where(f => f.GetProperty("type").GetString() == MessageTypes.RoomJoin), f => Assert.False(f.TryGetProperty("room", out _)));
        var ack = await client.PublishAsync(rooms[^1], "t.after", new { n = 1 });
        Assert.Equal(ack.Seq, Assert.Single(await ReadAsync(subscriptions[^1], 1)).Seq);
    }

    [Fact]
    public async Task A_worker_with_a_smaller_MaxFrameBytes_than_the_client_gets_the_rejoin_in_frames_within_its_limit_and_keeps_the_connection()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxFrameBytes", "16384"));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(50);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(200);
        });
        var prefix = Names.Room("bm");
        var rooms = Enumerable.Range(0, 450).Select(i => $"{prefix}.room-number-{i:D4}").ToList(); // ~20 KB of entries
        var joining = rooms.Select(r => client.JoinAsync(r)).ToList();
        await client.ConnectAsync();
        await Task.WhenAll(joining).WaitAsync(WaitLimit);

        relay.Drop();
        await Eventually.TrueAsync(() => Joined(relay.Received(2)).Count == rooms.Count, WaitLimit);

        // Both connections' joins: several batch frames, each within the worker's 16 KiB (the client's option is 64 KiB).
        foreach (var n in new[] { 1, 2 })
        {
            var frames = relay.SentWithSizes(n).Where(f => f.Frame.GetProperty("type").GetString() == MessageTypes.RoomJoin).ToList();
            Assert.True(frames.Count >= 2, $"connection {n}: {frames.Count} join frames");
            Assert.All(frames, f => Assert.InRange(f.Bytes, 1, 16384));
        }

        Assert.Equal(rooms.Order(), Joined(relay.Received(2)).Order());
        Assert.Equal(2, relay.Connections); // no 1009 close, no reconnect loop
        Assert.Equal(ConnectionState.Open, client.State);
    }

    [Fact]
    public async Task A_worker_allowing_fewer_rooms_than_the_client_holds_joins_up_to_its_limit_in_frames_within_it_and_ends_each_room_beyond_it_with_too_many_rooms()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxRoomsPerConnection", "100"));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json);
        var prefix = Names.Room("bl");
        var rooms = Enumerable.Range(0, 120).Select(i => $"{prefix}.r{i}").ToList();
        var joining = rooms.Select(r => client.JoinAsync(r)).ToList();
        await client.ConnectAsync();
        var outcomes = await Task.WhenAll(joining.Select(async j =>
        {
            try
            {
                await j.WaitAsync(WaitLimit);
                return null;
            }
            catch (BridgeException ex)
            {
                return ex.Code;
            }
        }));

        Assert.Equal(100, outcomes.Count(o => o is null));
        Assert.Equal(20, outcomes.Count(o => o == ErrorCodes.TooManyRooms));
        var refused = rooms.Where((_, i) => outcomes[i] is not null).Order().ToList();
        var errors = relay.Received(1).Where(f => f.GetProperty("type").GetString() == MessageTypes.Error).ToList();
        Assert.Equal(refused, errors.Select(f => f.GetProperty("room").GetString()!).Order());
        var joins = relay.Sent(1).Where(f => f.GetProperty("type").GetString() == MessageTypes.RoomJoin).ToList();
        Assert.All(joins, f => Assert.InRange(f.GetProperty("payload").GetProperty("rooms").GetArrayLength(), 1, 100));
        Assert.Equal(120, joins.Sum(f => f.GetProperty("payload").GetProperty("rooms").GetArrayLength()));
    }

    [Fact]
    public async Task A_batch_frame_refused_with_rate_limited_is_sent_again_as_a_batch_after_a_backoff_and_its_rooms_join()
    {
        // Two frames at once, then 20 a second: most of the rejoin's batch frames are refused whole (no room named).
        await using var worker = await WorkerHost.StartAsync(
            nats.Server, ("Bridge:Limits:MessagesPerSecond", "20"), ("Bridge:Limits:MessageBurst", "2"));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json, o => o.MaxFrameBytes = 512);
        var prefix = Names.Room("bt");
        var rooms = Enumerable.Range(0, 40).Select(i => $"{prefix}.r{i}").ToList();
        var joining = rooms.Select(r => client.JoinAsync(r)).ToList();
        await client.ConnectAsync();
        await Task.WhenAll(joining).WaitAsync(WaitLimit);

        var refused = relay.Received(1).Where(f => f.GetProperty("type").GetString() == MessageTypes.Error).ToList();
        Assert.NotEmpty(refused);
        Assert.All(refused, f => Assert.Equal(ErrorCodes.RateLimited, f.GetProperty("payload").GetProperty("code").GetString()));
        // Sent again as batches, never one by one: single joins only for a lone room at the end of the rooms.
        var joins = relay.Sent(1).Where(f => f.GetProperty("type").GetString() == MessageTypes.RoomJoin).ToList();
        Assert.InRange(joins.Where(f => f.TryGetProperty("room", out _)).Select(f => f.GetProperty("room").GetString()).Distinct().Count(), 0, 1);
        Assert.True(joins.Count > refused.Count, $"{joins.Count} join frames, {refused.Count} refused");
        Assert.Equal(rooms.Order(), Joined(relay.Received(1)).Order());
    }

    /// <summary>The rooms a worker answered <c>room.joined</c> for.</summary>
    internal static List<string> Joined(IEnumerable<System.Text.Json.JsonElement> received) =>
        [.. received.Where(f => f.GetProperty("type").GetString() == MessageTypes.RoomJoined).Select(f => f.GetProperty("room").GetString()!).Distinct()];
}
