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

        // Rooms resuming from a position, a pattern (also resuming) and a conflated room (re-joins with latest).
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

        Assert.Equal("t.before", Assert.Single(await ReadAsync(rate, 1)).Type);

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
        Assert.True(byRoom[conflated].GetProperty("latest").GetBoolean());
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
        // The refusal came back as the single join's error, with its own id.
        var single = Assert.Single(joins, f => f.TryGetProperty("room", out var r) && r.GetString() == refused);
        Assert.Equal(single.GetProperty("id").GetString(), error.Reference);

        foreach (var (room, subscription) in rooms.Zip(subscriptions))
        {
            var ack = await client.PublishAsync(room, "t.message", new { room });
            Assert.Equal(ack.Seq, Assert.Single(await ReadAsync(subscription, 1)).Seq);
        }
    }
}
