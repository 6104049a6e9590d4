using System.Text.Json;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using static Bridge.Tests.Client.BridgeClientBatchJoinTests;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>
/// <see cref="BridgeClient.JoinManyAsync"/> joins many rooms in batch <c>room.join</c> frames (docs/protocol.md §4
/// "Batch form", §12), against a real worker and nats-server, with a <see cref="FrameRelay"/> in between that counts
/// the frames.
/// </summary>
public sealed class BridgeClientJoinManyTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    // Joining and publishing to 1,200 rooms on a loaded two-core machine takes longer than one room's wait.
    private static readonly TimeSpan ManyRoomsLimit = TimeSpan.FromSeconds(90);

    // A frame rate that lets the test's own publishes through at once, so only the join frames are counted.
    private static readonly (string, string)[] FastFrames = [("Bridge:Limits:MessagesPerSecond", "100000"), ("Bridge:Limits:MessageBurst", "100000")];

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task Joining_1200_rooms_at_once_sends_them_in_two_batch_frames_and_every_room_delivers_a_published_message(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, [("Bridge:Connections:MaxRoomsPerConnection", "2000"), .. FastFrames]);
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, format);
        await using var publisher = NewClient(worker.WebSocketUrl, BridgeFormat.Json);
        await Task.WhenAll(client.ConnectAsync(), publisher.ConnectAsync());
        var prefix = Names.Room("jm");
        var rooms = Enumerable.Range(0, 1200).Select(i => $"{prefix}.r{i}").ToList();

        var results = await client.JoinManyAsync(rooms).WaitAsync(ManyRoomsLimit);

        Assert.Equal(rooms, results.Select(r => r.Room));
        Assert.All(results, r => Assert.Null(r.Error));
        // At most 1,000 rooms a frame (the worker allows 2,000 a connection): 1,000 + 200, no single join.
        var joins = JoinFrames(relay.Sent(1));
        Assert.Equal([1000, 200], joins.Select(Entries));
        Assert.All(joins, f => Assert.False(f.TryGetProperty("room", out _)));

        var acks = new Dictionary<string, ulong>();
        foreach (var chunk in rooms.Chunk(100))
        {
            var published = await Task.WhenAll(chunk.Select(r => publisher.PublishAsync(r, "t.message", new { room = r }))).WaitAsync(ManyRoomsLimit);
            foreach (var (room, ack) in chunk.Zip(published))
            {
                acks[room] = ack.Seq;
            }
        }

        foreach (var result in results)
        {
            Assert.Equal(acks[result.Room], Assert.Single(await ReadAsync(result.Subscription!, 1)).Seq);
        }
    }

    [Fact]
    public async Task A_forbidden_room_among_200_joined_at_once_alone_reports_forbidden_and_the_other_199_are_joined_and_deliver()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings(FastFrames));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        var granted = Names.Room("jg");
        var refused = Names.Room("jf");
        await using var client = NewClient(relay.Url, BridgeFormat.Json, o =>
            o.TokenProvider = _ => ValueTask.FromResult<string?>(tokens.Create("dana", subRooms: [$"{granted}.*"], pubRooms: [$"{granted}.*"])));
        await client.ConnectAsync();
        var rooms = Enumerable.Range(0, 199).Select(i => $"{granted}.r{i}").ToList();
        rooms.Insert(100, refused);

        var results = await client.JoinManyAsync(rooms).WaitAsync(WaitLimit);

        Assert.Equal(rooms, results.Select(r => r.Room));
        var failed = Assert.Single(results, r => !r.IsJoined);
        Assert.Equal(refused, failed.Room);
        Assert.Equal(ErrorCodes.Forbidden, failed.Error!.Code);
        Assert.Null(failed.Subscription);
        Assert.Single(JoinFrames(relay.Sent(1)));

        var joined = results.Where(r => r.IsJoined).ToList();
        var acks = await Task.WhenAll(joined.Select(r => client.PublishAsync(r.Room, "t.message", new { r.Room }))).WaitAsync(WaitLimit);
        foreach (var (result, ack) in joined.Zip(acks))
        {
            Assert.Equal(ack.Seq, Assert.Single(await ReadAsync(result.Subscription!, 1)).Seq);
        }
    }

    [Fact]
    public async Task A_worker_whose_frame_rate_refuses_1200_single_joins_joins_all_1200_rooms_of_one_JoinManyAsync_without_a_rate_limited_answer()
    {
        // Ten frames at once, then five a second: 1,200 single joins would be mostly refused, again and again.
        await using var worker = await WorkerHost.StartAsync(
            nats.Server,
            ("Bridge:Connections:MaxRoomsPerConnection", "2000"),
            ("Bridge:Limits:MessagesPerSecond", "5"),
            ("Bridge:Limits:MessageBurst", "10"));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json);
        await client.ConnectAsync();
        var prefix = Names.Room("jr");
        var rooms = Enumerable.Range(0, 1200).Select(i => $"{prefix}.r{i}").ToList();

        var results = await client.JoinManyAsync(rooms).WaitAsync(ManyRoomsLimit);

        Assert.All(results, r => Assert.Null(r.Error));
        Assert.DoesNotContain(relay.Received(1), f => f.GetProperty("type").GetString() == MessageTypes.Error);
        Assert.Equal(2, JoinFrames(relay.Sent(1)).Count);
        Assert.Equal(rooms.Order(), Joined(relay.Received(1)).Order());
    }

    [Fact]
    public async Task Rooms_beyond_the_workers_maxRoomsPerConnection_go_in_frames_of_at_most_that_many_rooms_and_each_reports_too_many_rooms()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxRoomsPerConnection", "100"));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json);
        await client.ConnectAsync();
        var prefix = Names.Room("jl");
        var rooms = Enumerable.Range(0, 250).Select(i => $"{prefix}.r{i}").ToList();

        var results = await client.JoinManyAsync(rooms).WaitAsync(WaitLimit);

        // welcome's maxRoomsPerConnection (100) sizes the frames: 100 + 100 + 50 entries, never a frame refused whole.
        var joins = JoinFrames(relay.Sent(1));
        Assert.Equal([100, 100, 50], joins.Select(Entries));
        Assert.Equal(100, results.Count(r => r.IsJoined));
        var refused = results.Where(r => !r.IsJoined).ToList();
        Assert.Equal(150, refused.Count);
        Assert.All(refused, r => Assert.Equal(ErrorCodes.TooManyRooms, r.Error!.Code));
        var errors = relay.Received(1).Where(f => f.GetProperty("type").GetString() == MessageTypes.Error).ToList();
        Assert.Equal(refused.Select(r => r.Room).Order(), errors.Select(f => f.GetProperty("room").GetString()!).Order());
    }

    [Fact]
    public async Task A_name_given_twice_or_held_already_gets_the_held_subscription_and_only_the_new_rooms_are_sent()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json);
        await client.ConnectAsync();
        var prefix = Names.Room("jd");
        var held = await client.JoinAsync($"{prefix}.a");

        var results = await client.JoinManyAsync([$"{prefix}.a", $"{prefix}.b", $"{prefix}.b", $"{prefix}.c"]).WaitAsync(WaitLimit);

        Assert.Same(held, results[0].Subscription);
        Assert.Same(results[1].Subscription, results[2].Subscription);
        Assert.NotNull(results[3].Subscription);
        var joins = JoinFrames(relay.Sent(1));
        Assert.Equal(2, joins.Count); // JoinAsync's single join, then one batch of the two new rooms
        Assert.Equal(
            [$"{prefix}.b", $"{prefix}.c"],
            joins[1].GetProperty("payload").GetProperty("rooms").EnumerateArray().Select(e => e.GetProperty("room").GetString()));
    }

    [Fact]
    public async Task A_cancelled_JoinManyAsync_before_the_connection_leaves_its_rooms_so_the_connection_never_joins_them()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json);
        var prefix = Names.Room("jc");
        using var cancel = new CancellationTokenSource();

        var joining = client.JoinManyAsync([$"{prefix}.a", $"{prefix}.b"], cancellationToken: cancel.Token);
        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => joining.WaitAsync(WaitLimit));
        await client.ConnectAsync();
        await client.JoinAsync($"{prefix}.c").WaitAsync(WaitLimit);

        var join = Assert.Single(JoinFrames(relay.Sent(1)));
        Assert.Equal($"{prefix}.c", join.GetProperty("room").GetString());
    }

    /// <summary>The rooms a join frame carries: a batch's entries, or 1 for a single join.</summary>
    private static int Entries(JsonElement join) =>
        join.TryGetProperty("payload", out var payload) && payload.TryGetProperty("rooms", out var rooms) ? rooms.GetArrayLength() : 1;

    private static List<JsonElement> JoinFrames(IEnumerable<JsonElement> sent) =>
        [.. sent.Where(f => f.GetProperty("type").GetString() == MessageTypes.RoomJoin)];
}
