using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;

namespace Bridge.Tests.Integration;

/// <summary>
/// An <c>error</c> that concerns one room names it in the envelope's <c>room</c> (a batch entry's too), whole-frame
/// errors name none, and <c>welcome</c> announces the limits a client sizes its batch joins by (docs/protocol.md §4).
/// </summary>
public sealed class ErrorRoomTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static Dictionary<string, object?> Batch(string id, object? rooms) => new()
    {
        ["type"] = MessageTypes.RoomJoin,
        ["id"] = id,
        ["payload"] = new Dictionary<string, object?> { ["rooms"] = rooms },
    };

    private static Dictionary<string, object?> Entry(string room, object? since = null) =>
        since is null ? new() { ["room"] = room } : new() { ["room"] = room, ["since"] = since };

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Each_refused_entry_of_a_batch_join_names_its_room_and_the_other_entries_join(string protocol)
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings(("Bridge:Connections:MaxRoomsPerConnection", "6"), ("Bridge:Connections:MaxPatternsPerConnection", "2")));
        var token = tokens.Create(subRooms: ["ok.>"]);
        await using var client = await TestClient.ConnectAsync(new Uri(worker.WebSocketUrl + "?access_token=" + token), protocol);
        var held = Enumerable.Range(0, 4).Select(_ => Names.Room("ok")).ToList();
        foreach (var room in held)
        {
            await client.JoinAndWaitAsync(room);
        }

        // Six entries (the limit): two join, one is beyond the connection's six rooms, three are refused as entries.
        var (first, second, over) = (Names.Room("ok"), Names.Room("ok"), Names.Room("ok"));
        var forbidden = Names.Room("other");
        var badSince = Names.Room("ok");
        await client.SendAsync(Batch("b-1", new object?[]
        {
            Entry(first), Entry(forbidden), Entry(badSince, "soon"), new Dictionary<string, object?> { ["room"] = 5 }, Entry(second), Entry(over),
        }));

        var answers = await client.CollectAsync(6, f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error, TimeSpan.FromSeconds(30));
        Assert.Equal(new[] { first, second }.Order(), answers.Where(f => f.Type == MessageTypes.RoomJoined).Select(f => f.Room!).Order());
        var errors = answers.Where(f => f.Type == MessageTypes.Error).ToDictionary(f => f.ErrorCode!);
        Assert.Equal(forbidden, errors[ErrorCodes.Forbidden].Room);
        Assert.Equal(badSince, errors[ErrorCodes.InvalidArgument].Room);
        Assert.Equal(over, errors[ErrorCodes.TooManyRooms].Room);
        Assert.Null(errors[ErrorCodes.InvalidRoom].Room); // no valid room string: nothing to name
        Assert.All(errors.Values, e => Assert.Equal("b-1", e.Payload!["ref"]!.GetValue<string>()));
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Each_refused_batch_entry_says_what_is_wrong_with_it_in_its_own_words(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        var rated = Names.Room("ok");

        await client.SendAsync(Batch("b-1", new object?[]
        {
            5, new Dictionary<string, object?> { ["room"] = 5 }, new Dictionary<string, object?>(), Entry("a..b"), Entry(">"),
            new Dictionary<string, object?> { ["room"] = rated, ["maxRate"] = 5000 },
        }));

        var errors = await client.CollectAsync(6, f => f.Type == MessageTypes.Error, TimeSpan.FromSeconds(30));
        Assert.Equal(
            new[]
            {
                (ErrorCodes.InvalidRoom, "rooms[0] must be an object with a string 'room'"),
                (ErrorCodes.InvalidRoom, "rooms[1].room must be a string"),
                (ErrorCodes.InvalidRoom, "rooms[2].room is required"),
                (ErrorCodes.InvalidRoom, $"rooms[3].room: {Bridge.Worker.Protocol.RoomField.InvalidMessage}"),
                (ErrorCodes.PatternTooBroad, "rooms[4].room: a room pattern must start with at least 1 literal token(s) before its first wildcard"),
                (ErrorCodes.InvalidArgument, $"maxRate of room '{rated}' must be a number of messages per second per room, above 0 and at most 1000"),
            },
            errors.Select(e => (e.ErrorCode!, e.Payload!["message"]!.GetValue<string>())));
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Errors_that_refuse_a_whole_batch_frame_name_no_room(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(
            nats.Server, ("Bridge:Connections:MaxRoomsPerConnection", "3"), ("Bridge:Connections:MaxPatternsPerConnection", "2"));
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);

        await client.SendAsync(Batch("b-1", "not a list"));
        var notList = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        await client.SendAsync(Batch("b-2", Enumerable.Range(0, 4).Select(_ => Entry(Names.Room("ok"))).ToList()));
        var tooMany = await client.WaitForAsync(f => f.Type == MessageTypes.Error);

        Assert.Equal((ErrorCodes.InvalidArgument, "b-1", null), (notList.ErrorCode, notList.Payload!["ref"]!.GetValue<string>(), notList.Room));
        Assert.Equal((ErrorCodes.TooManyRooms, "b-2", null), (tooMany.ErrorCode, tooMany.Payload!["ref"]!.GetValue<string>(), tooMany.Room));
        Assert.False(notList.Json.ContainsKey("room"));
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Errors_of_a_single_join_a_leave_a_sync_and_a_publish_name_their_room(string protocol)
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var token = tokens.Create(subRooms: ["ok.>"], pubRooms: ["ok.>"]);
        await using var client = await TestClient.ConnectAsync(new Uri(worker.WebSocketUrl + "?access_token=" + token), protocol);
        var forbidden = Names.Room("other");
        var notJoined = Names.Room("ok");

        await client.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = forbidden, ["id"] = "j-1" });
        var join = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = notJoined, ["id"] = "l-1" });
        var leave = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = forbidden, ["id"] = "s-1" });
        var sync = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        await client.PublishAsync(forbidden, new Dictionary<string, object?> { ["text"] = "hi" }, id: "p-1");
        var publish = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = "not a room", ["id"] = "j-2" });
        var invalid = await client.WaitForAsync(f => f.Type == MessageTypes.Error);

        Assert.Equal((ErrorCodes.Forbidden, forbidden), (join.ErrorCode, join.Room));
        Assert.Equal((ErrorCodes.NotJoined, notJoined), (leave.ErrorCode, leave.Room));
        Assert.Equal((ErrorCodes.Forbidden, forbidden), (sync.ErrorCode, sync.Room));
        Assert.Equal((ErrorCodes.Forbidden, forbidden), (publish.ErrorCode, publish.Room));
        Assert.Equal((ErrorCodes.InvalidRoom, null), (invalid.ErrorCode, invalid.Room)); // client text that failed its check is not echoed
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Welcome_announces_the_workers_frame_size_and_room_limits(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(
            nats.Server, ("Bridge:Connections:MaxFrameBytes", "16384"), ("Bridge:Connections:MaxRoomsPerConnection", "77"));
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);

        var welcome = await client.NextAsync();

        Assert.Equal(MessageTypes.Welcome, welcome.Type);
        Assert.Equal(16384, welcome.Payload!["maxFrameBytes"]!.GetValue<int>());
        Assert.Equal(77, welcome.Payload!["maxRoomsPerConnection"]!.GetValue<int>());
    }
}
