using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;

namespace Bridge.Tests.Integration;

/// <summary>Joins of room patterns (docs/protocol.md §4, "Room patterns"): delivery, resume, overlaps, grants and refusals.</summary>
public sealed class PatternJoinTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(60) };

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_pattern_join_delivers_every_matching_room_with_its_own_name_through_one_subscription(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("site");
        var pattern = $"{site}.>";
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        var joined = await client.JoinPatternAsync(pattern);
        Assert.Equal(pattern, joined.Room);
        Assert.Equal(0, joined.Payload!["replayed"]!.GetValue<int>());

        // Three matching rooms (one two levels down) and one beside the pattern, interleaved.
        var rooms = new[] { $"{site}.a", $"{site}.b", $"{site}.c.d", $"{site}x.a" };
        var published = await Store.PublishAsync(nats.Server, Enumerable.Range(0, 12).Select(i => rooms[i % 4]));
        var matching = published.Where(p => p.Room != rooms[3]).ToList();
        var got = await client.CollectAsync(matching.Count, f => f.Type == Store.Type);
        Assert.Equal(matching.Select(p => (p.Room, p.Seq)), got.Select(f => (f.Room!, f.Seq)));
        Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(300)));

        // One core subscription on the pattern's live subject, none per room.
        var subscriptions = await nats.Server.SubscriptionsOfAsync(worker.Id);
        Assert.Contains($"live.rooms.{pattern}", subscriptions);
        Assert.DoesNotContain(subscriptions, s => s.StartsWith($"live.rooms.{site}.", StringComparison.Ordinal) && s != $"live.rooms.{pattern}");

        // Leaving the pattern stops its messages and closes its subscription.
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = pattern });
        Assert.Equal(pattern, (await client.WaitForAsync(f => f.Type == MessageTypes.RoomLeft)).Room);
        await Store.PublishAsync(nats.Server, [rooms[0]]);
        Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(300)));
        await Eventually.TrueAsync(async () => !(await nats.Server.SubscriptionsOfAsync(worker.Id)).Contains($"live.rooms.{pattern}"));
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_pattern_resumed_on_another_worker_gets_every_matching_message_stored_meanwhile_once_in_stream_order(string protocol)
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("site");
        var pattern = $"{site}.*";
        var rooms = new[] { $"{site}.a", $"{site}.b", $"{site}.c" };
        ulong lastSeen;
        await using (var first = await TestClient.ConnectAsync(workerA.WebSocketUrl, protocol))
        {
            await first.JoinPatternAsync(pattern);
            var before = await Store.PublishAsync(nats.Server, [rooms[0], rooms[1]]);
            lastSeen = (await first.CollectAsync(2, f => f.Type == Store.Type))[^1].Seq;
            Assert.Equal(before[^1].Seq, lastSeen);
        }

        // While it is away: 300 messages over the three rooms, and some of other rooms in between.
        var names = Enumerable.Range(0, 400).Select(i => i % 4 == 3 ? Names.Room("other") : rooms[i % 4]);
        var missed = (await Store.PublishAsync(nats.Server, names)).Where(p => p.Room.StartsWith(site + ".", StringComparison.Ordinal)).ToList();

        await using var again = await TestClient.ConnectAsync(workerB.WebSocketUrl, protocol);
        await again.SendAsync(Store.Join(pattern, new() { ["since"] = lastSeen }));
        var replayed = await again.CollectAsync(missed.Count, f => f.Type == Store.Type, TimeSpan.FromSeconds(30));
        var joined = await again.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);
        Assert.Equal(missed.Select(p => (p.Room, p.Seq)), replayed.Select(f => (f.Room!, f.Seq)));
        Assert.Equal(missed.Count, joined.Payload!["replayed"]!.GetValue<int>());
        Assert.False(joined.Payload!["truncated"]!.GetValue<bool>());
        Assert.Equal(pattern, joined.Room);

        // Then live, nothing repeated.
        var live = await Store.PublishAsync(nats.Server, [rooms[2], rooms[0]]);
        Assert.Equal(live.Select(p => p.Seq), (await again.CollectAsync(2, f => f.Type == Store.Type)).Select(f => f.Seq));
        Assert.True(await again.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task An_sse_stream_of_a_pattern_resumes_on_another_worker_from_the_pattern_in_its_event_id()
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("site");
        var pattern = $"{site}.>";
        var alone = Names.Room("alone");
        var rooms = new[] { $"{site}.a", $"{site}.b.c" };
        var query = Uri.EscapeDataString($"{pattern},{alone}");
        string lastId;
        await using (var first = await SseClient.ConnectAsync(workerA.HttpUrl, query))
        {
            await first.CollectAsync(2, e => e.Event == MessageTypes.RoomJoined);
            var before = await Store.PublishAsync(nats.Server, [rooms[0], alone, rooms[1]]);
            await first.CollectAsync(3, e => e.Event == Store.Type);
            lastId = first.LastEventId!;
            Assert.Contains($"{pattern}={before[2].Seq}", lastId, StringComparison.Ordinal);
            Assert.Contains($"{alone}={before[1].Seq}", lastId, StringComparison.Ordinal);
        }

        var missed = await Store.PublishAsync(nats.Server, Enumerable.Range(0, 30).Select(i => i % 3 == 2 ? alone : rooms[i % 3]));
        await using var again = await SseClient.ConnectAsync(workerB.HttpUrl, query, lastId);
        var got = await again.CollectAsync(missed.Count, e => e.Event == Store.Type, TimeSpan.FromSeconds(30));
        Assert.Equal(missed.Select(p => p.Seq).Order(), got.Select(e => e.Json["seq"]!.GetValue<ulong>()).Order());
        var ofPattern = got.Where(e => e.Json["room"]!.GetValue<string>() != alone).Select(e => e.Json["seq"]!.GetValue<ulong>()).ToList();
        Assert.Equal(ofPattern.Order(), ofPattern);
        Assert.Equal(missed.Where(p => p.Room != alone).Select(p => p.Room), got.Where(e => e.Json["room"]!.GetValue<string>() != alone).Select(e => e.Json["room"]!.GetValue<string>()));
    }

    [Fact]
    public async Task Long_polls_of_a_pattern_across_two_workers_see_every_matching_message_exactly_once()
    {
        (string, string)[] settings = [("Bridge:Connections:PollTimeout", "00:00:01"), ("Bridge:Connections:PollMaxMessages", "20")];
        await using var workerA = await WorkerHost.StartAsync(nats.Server, settings);
        await using var workerB = await WorkerHost.StartAsync(nats.Server, settings);
        var site = Names.Room("site");
        var pattern = $"{site}.*";
        var first = await Http.GetFromJsonAsync<JsonObject>(new Uri(workerA.HttpUrl, $"/poll?rooms={Uri.EscapeDataString(pattern)}"));
        var cursor = first!["cursor"]!.GetValue<string>();
        Assert.Matches("^[0-9]+$", cursor); // one name: its seq alone

        var published = await Store.PublishAsync(nats.Server, Enumerable.Range(0, 90).Select(i => $"{site}.r{i % 3}"));
        var seen = new List<ulong>();
        for (var poll = 0; poll < 40 && seen.Count < published.Count; poll++)
        {
            var worker = poll % 2 == 0 ? workerB : workerA;
            var answer = await Http.GetFromJsonAsync<JsonObject>(new Uri(worker.HttpUrl, $"/poll?rooms={Uri.EscapeDataString(pattern)}&cursor={cursor}"));
            cursor = answer!["cursor"]!.GetValue<string>();
            Assert.Empty(answer["errors"]!.AsArray());
            seen.AddRange(answer["messages"]!.AsArray().Select(m => m!["seq"]!.GetValue<ulong>()));
        }

        Assert.Equal(published.Select(p => p.Seq), seen);
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_connection_joined_to_overlapping_rooms_and_patterns_gets_each_message_once(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("site");
        var rooms = new[] { $"{site}.a", $"{site}.b", $"{site}.c.d" };
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await client.JoinAndWaitAsync(rooms[0]);
        await client.JoinPatternAsync($"{site}.*");
        await client.JoinPatternAsync($"{site}.>");

        var published = await Store.PublishAsync(nats.Server, Enumerable.Range(0, 60).Select(i => rooms[i % 3]));
        var got = await client.CollectAsync(published.Count, f => f.Type == Store.Type);
        Assert.Equal(published.Select(p => p.Seq).Order(), got.Select(f => f.Seq).Order());
        Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(500)));

        // A resume of the narrower pattern while the wider one is live: what the wider one sent is not sent again.
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = $"{site}.*" });
        await client.WaitForAsync(f => f.Type == MessageTypes.RoomLeft);
        var more = await Store.PublishAsync(nats.Server, [rooms[1], rooms[0]]);
        Assert.Equal(more.Select(p => p.Seq), (await client.CollectAsync(2, f => f.Type == Store.Type)).Select(f => f.Seq));
        await client.SendAsync(Store.Join($"{site}.*", new() { ["since"] = published[0].Seq }));
        var rejoined = await client.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);
        Assert.Equal($"{site}.*", rejoined.Room);
        Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(500)));
    }

    [Fact]
    public async Task An_sse_stream_of_overlapping_rooms_and_patterns_gets_each_message_once()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("site");
        var rooms = new[] { $"{site}.a", $"{site}.b", $"{site}.c.d" };
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, Uri.EscapeDataString($"{rooms[0]},{site}.*,{site}.>"));
        await sse.CollectAsync(3, e => e.Event == MessageTypes.RoomJoined);

        var published = await Store.PublishAsync(nats.Server, Enumerable.Range(0, 60).Select(i => rooms[i % 3]));
        var got = await sse.CollectAsync(published.Count, e => e.Event == Store.Type);
        Assert.Equal(published.Select(p => p.Seq).Order(), got.Select(e => e.Json["seq"]!.GetValue<ulong>()).Order());
        var more = await Store.PublishAsync(nats.Server, [rooms[1]]);
        Assert.Equal(more[0].Seq, (await sse.WaitForAsync(e => e.Event == Store.Type)).Json["seq"]!.GetValue<ulong>());
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_grant_of_a_pattern_allows_that_pattern_and_narrower_ones_but_not_a_wider_one(string protocol)
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var token = tokens.Create(subRooms: ["devices.site-3.*"]);
        await using var client = await TestClient.ConnectAsync(new Uri(worker.WebSocketUrl + "?access_token=" + token), protocol);
        Assert.Equal("devices.site-3.*", (await client.JoinPatternAsync("devices.site-3.*")).Room);

        foreach (var wider in new[] { "devices.>", "devices.site-3.>", "devices.*.*", "devices.*" })
        {
            await client.SendAsync(Store.Join(wider, null, id: "j"));
            var error = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
            Assert.Equal(ErrorCodes.Forbidden, error.ErrorCode);
        }

        // Its own rooms' pattern is always granted; another user's is not.
        Assert.Equal("user.alice.>", (await client.JoinPatternAsync("user.alice.>")).Room);
        await client.SendAsync(Store.Join("user.*", null));
        Assert.Equal(ErrorCodes.Forbidden, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);

        using var sse = await Http.GetAsync(new Uri(worker.HttpUrl, $"/sse?rooms={Uri.EscapeDataString("devices.>")}&access_token={token}"));
        Assert.Equal(HttpStatusCode.Forbidden, sse.StatusCode);
    }

    [Fact]
    public async Task A_refreshed_token_that_no_longer_grants_a_pattern_leaves_it()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var site = Names.Room("site");
        await using var client = await TestClient.ConnectAsync(new Uri(worker.WebSocketUrl + "?access_token=" + tokens.Create(subRooms: [$"{site}.>"])));
        await client.JoinPatternAsync($"{site}.>");
        await client.JoinPatternAsync($"{site}.a.*");

        await client.SendAsync(new()
        {
            ["type"] = MessageTypes.AuthRefresh,
            ["payload"] = new Dictionary<string, object?> { ["token"] = tokens.Create(subRooms: [$"{site}.a.>"]) },
        });
        var left = await client.WaitForAsync(f => f.Type == MessageTypes.RoomLeft);
        Assert.Equal($"{site}.>", left.Room);
        Assert.Equal(ErrorCodes.Forbidden, left.Payload!["reason"]!.GetValue<string>());

        var published = await Store.PublishAsync(nats.Server, [$"{site}.b", $"{site}.a.x"]);
        Assert.Equal(published[1].Seq, (await client.WaitForAsync(f => f.Type == Store.Type)).Seq);
        Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(300)));
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Bad_patterns_too_many_patterns_and_bad_join_options_are_refused_and_the_connection_stays(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxPatternsPerConnection", "2"));
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        var site = Names.Room("site");
        (string Room, Dictionary<string, object?>? Args, string Code)[] cases =
        [
            (">", null, ErrorCodes.PatternTooBroad),
            ("*", null, ErrorCodes.PatternTooBroad),
            ("*.x", null, ErrorCodes.PatternTooBroad),
            ($"{site}.>.b", null, ErrorCodes.InvalidRoom),
            ($"{site}.*x", null, ErrorCodes.InvalidRoom),
            ($"{site}..*", null, ErrorCodes.InvalidRoom),
            ($"{site}.>", new() { ["latest"] = "yes" }, ErrorCodes.InvalidArgument),
            ($"{site}.>", new() { ["latest"] = 1 }, ErrorCodes.InvalidArgument),
            ($"{site}.>", new() { ["maxRate"] = 0 }, ErrorCodes.InvalidArgument),
            ($"{site}.>", new() { ["maxRate"] = -1 }, ErrorCodes.InvalidArgument),
            ($"{site}.>", new() { ["maxRate"] = "10" }, ErrorCodes.InvalidArgument),
            ($"{site}.>", new() { ["maxRate"] = 1e9 }, ErrorCodes.InvalidArgument),
            ($"{site}.>", new() { ["maxRate"] = true }, ErrorCodes.InvalidArgument),
            ($"{site}.>", new() { ["since"] = -5 }, ErrorCodes.InvalidArgument),
        ];
        foreach (var (room, args, code) in cases)
        {
            await client.SendAsync(Store.Join(room, args, id: "bad"));
            var error = await client.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.RoomJoined);
            Assert.True(code == error.ErrorCode, $"{room} {args?.Keys.FirstOrDefault()}: expected {code}, got {error}");
            Assert.Equal("bad", error.Payload!["ref"]!.GetValue<string>());
        }

        // A batch entry's bad pattern is named by its index; the good entries join.
        await client.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["id"] = "batch",
            ["payload"] = new Dictionary<string, object?>
            {
                ["rooms"] = new List<object?>
                {
                    new Dictionary<string, object?> { ["room"] = $"{site}.a.*" },
                    new Dictionary<string, object?> { ["room"] = ">" },
                    new Dictionary<string, object?> { ["room"] = $"{site}.b.>", ["latest"] = true },
                },
            },
        });
        var batchError = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal(ErrorCodes.PatternTooBroad, batchError.ErrorCode);
        Assert.Contains("rooms[1]", batchError.Payload!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var joined = await client.CollectAsync(2, f => f.Type == MessageTypes.RoomJoined);
        Assert.Equal([$"{site}.a.*", $"{site}.b.>"], joined.Select(f => f.Room!).Order());

        // Two patterns is the limit here; a room still joins.
        await client.SendAsync(Store.Join($"{site}.c.*", null, id: "third"));
        Assert.Equal(ErrorCodes.TooManyRooms, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);
        await client.JoinAndWaitAsync($"{site}.c.x");
        Assert.Equal(WebSocketStateOpen, client.Socket.State);

        // The same refusals over SSE, before the stream starts.
        foreach (var (query, code) in new[]
                 {
                     ($"rooms={Uri.EscapeDataString(">")}", ErrorCodes.PatternTooBroad),
                     ($"rooms={Uri.EscapeDataString(site + ".>.x")}", ErrorCodes.InvalidRoom),
                     ($"rooms={Uri.EscapeDataString($"{site}.a.*,{site}.b.*,{site}.c.*")}", ErrorCodes.TooManyRooms),
                     ($"rooms={site}.a&latest=yes", ErrorCodes.InvalidArgument),
                     ($"rooms={site}.a&maxRate=0", ErrorCodes.InvalidArgument),
                     ($"rooms={site}.a&maxRate=NaN", ErrorCodes.InvalidArgument),
                 })
        {
            using var response = await Http.GetAsync(new Uri(worker.HttpUrl, "/sse?" + query));
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal(code, (await response.Content.ReadFromJsonAsync<JsonObject>())!["code"]!.GetValue<string>());
        }
    }

    private const System.Net.WebSockets.WebSocketState WebSocketStateOpen = System.Net.WebSockets.WebSocketState.Open;
}
