using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Backend;

/// <summary>
/// Every operation of the backend API against real workers and a real nats-server, once over HTTP (API key) and
/// once over NATS request-reply: the same bodies give the same answers.
/// </summary>
public sealed class BackendApiTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private readonly Tokens _tokens = new();
    private readonly string _key = ApiClient.NewKey();

    public void Dispose() => _tokens.Dispose();

    private (string, string)[] Settings(params (string, string)[] more) =>
        _tokens.WorkerSettings([.. ApiClient.KeySettings("tests", _key), ("Bridge:Presence:Rooms:0", "p.>"), .. more]);

    private ApiClient Api(string adapter, WorkerHost worker) => ApiClient.For(adapter, worker.HttpUrl, _key, nats.Server.Url);

    private Task<TestClient> ConnectAsync(WorkerHost worker, string user, DateTime? issuedAt = null) =>
        TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={_tokens.Create(user, subRooms: [">"], pubRooms: [">"], issuedAt: issuedAt)}"));

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task Publish_stores_a_message_that_members_receive_and_a_retry_with_its_id_is_a_duplicate(string adapter)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api(adapter, worker);
        var room = Names.Room("api");
        await using var member = await ConnectAsync(worker, "member");
        await member.JoinAndWaitAsync(room);

        var body = new { room, type = "order.shipped", id = "o-1", payload = new { order = 42 } };
        var stored = await api.OkAsync("publish", body);
        var seq = stored["seq"]!.GetValue<ulong>();
        Assert.Equal(room, stored["room"]!.GetValue<string>());
        Assert.False(stored["duplicate"]!.GetValue<bool>());

        var got = await member.WaitForAsync(f => f.Type == "order.shipped");
        Assert.Equal(seq, got.Seq);
        Assert.Equal("o-1", got.Id);
        Assert.Equal(42, got.Payload!["order"]!.GetValue<int>());
        // The sender is the API key's name over HTTP, "backend" over NATS, unless the request names one.
        Assert.Equal(adapter == "http" ? "tests" : "backend", got.Json["from"]!.GetValue<string>());

        var retry = await api.OkAsync("publish", body);
        Assert.True(retry["duplicate"]!.GetValue<bool>());
        Assert.Equal(seq, retry["seq"]!.GetValue<ulong>());
        Assert.True(await member.NothingArrivesAsync(f => f.Type == "order.shipped", TimeSpan.FromMilliseconds(300)));

        await api.OkAsync("publish", new { room, type = "order.shipped", from = "billing-service", enc = "base64", payload = "AAEC" });
        var binary = await member.WaitForAsync(f => f.Type == "order.shipped");
        Assert.Equal("billing-service", binary.Json["from"]!.GetValue<string>());
        Assert.Equal("base64", binary.Json["enc"]!.GetValue<string>());
        Assert.Equal("AAEC", binary.Payload!.GetValue<string>());
    }

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task Broadcast_stores_one_message_in_every_room_and_a_retry_stores_none_twice(string adapter)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api(adapter, worker);
        var rooms = Enumerable.Range(0, 3).Select(_ => Names.Room("bc")).ToArray();
        await using var member = await ConnectAsync(worker, "member");
        foreach (var room in rooms)
        {
            await member.JoinAndWaitAsync(room);
        }

        var body = new { rooms, type = "news.flash", id = "n-1", payload = new { text = "hello" } };
        var answer = await api.OkAsync("broadcast", body);
        Assert.Equal(3, answer["stored"]!.GetValue<int>());
        Assert.Equal(0, answer["failed"]!.GetValue<int>());
        var results = answer["results"]!.AsArray();
        Assert.Equal(rooms, results.Select(r => r!["room"]!.GetValue<string>()));
        var got = await member.CollectAsync(3, f => f.Type == "news.flash");
        Assert.Equal(rooms.Order(), got.Select(f => f.Room!).Order());
        foreach (var frame in got)
        {
            Assert.Equal(results.Single(r => r!["room"]!.GetValue<string>() == frame.Room)!["seq"]!.GetValue<ulong>(), frame.Seq);
        }

        var retry = await api.OkAsync("broadcast", body);
        Assert.All(retry["results"]!.AsArray(), r => Assert.True(r!["duplicate"]!.GetValue<bool>()));
        Assert.True(await member.NothingArrivesAsync(f => f.Type == "news.flash", TimeSpan.FromMilliseconds(300)));
    }

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task History_pages_a_seq_range_and_the_latest_messages_as_the_envelopes_clients_receive(string adapter)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api(adapter, worker);
        var room = Names.Room("hist");
        await using var member = await ConnectAsync(worker, "member");
        await member.JoinAndWaitAsync(room);
        for (var i = 0; i < 7; i++)
        {
            await api.OkAsync("publish", new { room, type = "chat.message", id = $"m-{i}", payload = new { i } });
        }

        var live = await member.CollectAsync(7, f => f.Type == "chat.message");
        var pages = new List<JsonNode>();
        ulong? after = null;
        do
        {
            var page = await api.OkAsync("history", new { room, after_seq = after, limit = 3 });
            pages.Add(page);
            after = page["next_after_seq"]?.GetValue<ulong>();
            Assert.Equal(after is not null, page["more"]!.GetValue<bool>());
        }
        while (after is not null);

        Assert.Equal([3, 3, 1], pages.Select(p => p["messages"]!.AsArray().Count));
        var read = pages.SelectMany(p => p["messages"]!.AsArray()).ToList();
        // Byte for byte the frames a JSON client received live.
        Assert.Equal(live.Select(f => f.Json.ToJsonString()), read.Select(m => m!.ToJsonString()));
        Assert.All(pages, p => Assert.Equal(live[^1].Seq, p["last_seq"]!.GetValue<ulong>()));

        var range = await api.OkAsync("history", new { room, after_seq = live[1].Seq, to_seq = live[3].Seq });
        Assert.Equal([live[2].Seq, live[3].Seq], range["messages"]!.AsArray().Select(m => m!["seq"]!.GetValue<ulong>()));
        Assert.False(range["more"]!.GetValue<bool>());

        var latest = await api.OkAsync("history", new { room, latest = 2 });
        Assert.Equal(["m-5", "m-6"], latest["messages"]!.AsArray().Select(m => m!["id"]!.GetValue<string>()));

        var empty = await api.OkAsync("history", new { room = Names.Room("none") });
        Assert.Empty(empty["messages"]!.AsArray());
        Assert.Equal(0UL, empty["last_seq"]!.GetValue<ulong>());

        // A cursor past the room's end (a purged or recreated stream): last_seq is still the room's, so the backend sees it.
        var ahead = await api.OkAsync("history", new { room, after_seq = live[^1].Seq + 100 });
        Assert.Empty(ahead["messages"]!.AsArray());
        Assert.Equal(live[^1].Seq, ahead["last_seq"]!.GetValue<ulong>());
        var aheadOfNothing = await api.OkAsync("history", new { room = Names.Room("none"), after_seq = 100 });
        Assert.Equal(0UL, aheadOfNothing["last_seq"]!.GetValue<ulong>());
    }

    [Fact]
    public async Task A_history_page_stays_within_its_byte_bound_and_over_nats_within_max_payload()
    {
        await using var worker = await WorkerHost.StartAsync(
            nats.Server, Settings(("Bridge:Api:MaxHistoryPageBytes", "2048"), ("Bridge:Api:MaxRequestBytes", "2000000")));
        await using var http = Api("http", worker);
        await using var overNats = Api("nats", worker);
        var room = Names.Room("big");
        var text = new string('x', 500);
        for (var i = 0; i < 5; i++)
        {
            await http.OkAsync("publish", new { room, type = "chat.message", payload = new { text } });
        }

        var page = await http.OkAsync("history", new { room, limit = 100 });
        Assert.Equal(3, page["messages"]!.AsArray().Count); // three ~600-byte envelopes fit in 2 KiB, four do not
        Assert.True(page["more"]!.GetValue<bool>());

        // One message larger than the page bound still comes alone over HTTP; over NATS it cannot fit a reply: 900 KB
        // of binary is stored (under the 1 MiB message limit) and becomes 1.2 MB of base64 in its envelope (over the
        // server's 1 MiB max_payload).
        var huge = Convert.ToBase64String(new byte[900_000]);
        await http.OkAsync("publish", new { room, type = "chat.message", enc = "base64", payload = huge });
        var alone = await http.OkAsync("history", new { room, latest = 1 });
        Assert.Single(alone["messages"]!.AsArray());
        var refused = await overNats.CallAsync("history", new { room, latest = 1 });
        Assert.Equal(413, refused.Status);
        Assert.Equal(ErrorCodes.TooLarge, refused.Code);
    }

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task Presence_lists_the_users_of_a_room_on_every_worker(string adapter)
    {
        await using var a = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var b = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api(adapter, a);
        var room = Names.Room("p");
        await using var alice = await ConnectAsync(a, "alice");
        await using var bob = await ConnectAsync(b, "bob");
        await alice.JoinAndWaitAsync(room);
        await bob.JoinAndWaitAsync(room);

        var members = (await api.OkAsync("presence", new { room }))["members"]!.AsArray();
        Assert.Equal(["alice", "bob"], members.Select(m => m!["user"]!.GetValue<string>()).Order());
        Assert.All(members, m => Assert.Equal(1, m!["connections"]!.GetValue<int>()));

        var off = await api.CallAsync("presence", new { room = "no.presence" });
        Assert.Equal((400, ErrorCodes.PresenceDisabled), (off.Status, off.Code));
    }

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task Rooms_lists_the_active_rooms_of_every_worker_or_of_one(string adapter)
    {
        await using var a = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var b = await WorkerHost.StartAsync(nats.Server, Settings());
        var prefix = "lr" + Guid.NewGuid().ToString("N")[..8];
        string shared = $"{prefix}.shared", onlyA = $"{prefix}.a", onlyB = $"{prefix}.b";
        await using var onA = await ConnectAsync(a, "u1");
        await using var onA2 = await ConnectAsync(a, "u2");
        await using var onB = await ConnectAsync(b, "u3");
        await onA.JoinAndWaitAsync(shared);
        await onA.JoinAndWaitAsync(onlyA);
        await onA2.JoinAndWaitAsync(shared);
        await onB.JoinAndWaitAsync(shared);
        await onB.JoinAndWaitAsync(onlyB);
        await using var api = Api(adapter, a);

        var cluster = await api.OkAsync("rooms", new { pattern = $"{prefix}.>" });
        var rooms = cluster["rooms"]!.AsArray().Select(r => (r!["room"]!.GetValue<string>(), r["connections"]!.GetValue<int>(), r["workers"]!.GetValue<int>()));
        Assert.Equal([(onlyA, 1, 1), (onlyB, 1, 1), (shared, 3, 2)], rooms);
        Assert.Equal(new[] { a.Id, b.Id }.Order(StringComparer.Ordinal), cluster["workers"]!.AsArray().Select(w => w!.GetValue<string>()).Where(w => w == a.Id || w == b.Id));
        Assert.False(cluster["truncated"]!.GetValue<bool>());

        var limited = await api.OkAsync("rooms", new { pattern = $"{prefix}.>", limit = 2 });
        Assert.Equal(2, limited["rooms"]!.AsArray().Count);
        Assert.True(limited["truncated"]!.GetValue<bool>());

        if (adapter == "http")
        {
            // scope=worker: the worker that answers (over HTTP, the one asked).
            var mine = await api.OkAsync("rooms", new { scope = "worker", pattern = $"{prefix}.>" });
            Assert.Equal([onlyA, shared], mine["rooms"]!.AsArray().Select(r => r!["room"]!.GetValue<string>()));
            Assert.Equal([a.Id], mine["workers"]!.AsArray().Select(w => w!.GetValue<string>()));
        }
    }

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task Info_describes_every_worker_and_the_nats_server_it_uses(string adapter)
    {
        await using var a = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var b = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api(adapter, a);
        await using var client = await ConnectAsync(b, "someone");
        await client.JoinAndWaitAsync(Names.Room("info"));
        await using var sse = await SseClient.ConnectAsync(b.HttpUrl, Names.Room("info"), token: _tokens.Create("someone-else", subRooms: [">"]));
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);

        var info = await api.OkAsync("info");
        var workers = info["workers"]!.AsArray().ToDictionary(w => w!["id"]!.GetValue<string>(), w => w!);
        Assert.Contains(a.Id, workers.Keys);
        var onB = workers[b.Id];
        Assert.Equal((2, 1, 1), (onB["connections"]!["total"]!.GetValue<int>(), onB["connections"]!["websocket"]!.GetValue<int>(), onB["connections"]!["sse"]!.GetValue<int>()));
        Assert.Equal(2, onB["rooms"]!.GetValue<int>());
        Assert.False(string.IsNullOrEmpty(onB["version"]!.GetValue<string>()));
        Assert.True(onB["uptime_seconds"]!.GetValue<double>() >= 0);
        var varz = await nats.Server.MonitorAsync("/varz");
        Assert.Equal(varz["version"]!.GetValue<string>(), onB["nats"]!["server_version"]!.GetValue<string>());
        Assert.Equal("open", onB["nats"]!["state"]!.GetValue<string>());
        Assert.Empty(info["missing"]!.AsArray());

        var one = await api.OkAsync("info", new { scope = "worker" });
        Assert.Single(one["workers"]!.AsArray());
    }

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task Disconnect_closes_the_users_connections_on_every_worker_and_no_one_elses(string adapter)
    {
        await using var a = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var b = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api(adapter, a);
        var room = Names.Room("dc");
        var alice = "alice-" + Guid.NewGuid().ToString("N")[..6];
        await using var aliceOnA = await ConnectAsync(a, alice);
        await using var aliceOnB = await ConnectAsync(b, alice);
        await using var aliceSse = await SseClient.ConnectAsync(b.HttpUrl, room, token: _tokens.Create(alice, subRooms: [">"]));
        await aliceSse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        await using var bob = await ConnectAsync(b, "bob");
        await bob.JoinAndWaitAsync(room);

        var answer = await api.OkAsync("disconnect", new { user = alice, reason = "account closed" });
        Assert.Equal(3, answer["connections"]!.GetValue<int>());
        Assert.Empty(answer["missing"]!.AsArray());

        Assert.Equal((WebSocketCloseStatus)CloseCodes.Disconnected, await aliceOnA.Closed.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal((WebSocketCloseStatus)CloseCodes.Disconnected, await aliceOnB.Closed.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("account closed", aliceOnB.Socket.CloseStatusDescription);
        var ended = await aliceSse.WaitForAsync(e => e.Event == MessageTypes.ServerDisconnect);
        Assert.Equal(CloseCodes.Disconnected, ended.Json["payload"]!["code"]!.GetValue<int>());

        // Bob is untouched, and alice may come back (a disconnect is not a ban).
        await api.OkAsync("publish", new { room, type = "chat.message", payload = "still here" });
        await bob.WaitForAsync(f => f.Type == "chat.message");
        await using var back = await ConnectAsync(a, alice);
        await back.JoinAndWaitAsync(room);
    }

    [Fact]
    public async Task A_user_any_token_may_name_can_be_banned_and_the_api_holds_users_to_the_tokens_rule()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api("http", worker);
        // 200 characters, 400 UTF-8 bytes: a sub the token check accepts (256 characters at most) is a user the API takes.
        var wide = new string('\u00e9', 190) + Guid.NewGuid().ToString("N")[..10];
        var token = _tokens.Create(wide, subRooms: [">"], issuedAt: DateTime.UtcNow.AddMinutes(-1));
        Assert.Equal(101, await UpgradeStatusAsync(worker, token));
        await api.OkAsync("ban", new { user = wide, ttl_seconds = 3600 });
        Assert.Equal(401, await UpgradeStatusAsync(worker, token));
        Assert.Equal(1, (await api.OkAsync("unban", new { user = wide }))["removed"]!.GetValue<int>());

        // One character more than a token's sub may have: refused, as the token would be.
        var tooLong = await api.CallAsync("ban", new { user = new string('\u00e9', 257) });
        Assert.Equal((400, ErrorCodes.InvalidArgument), (tooLong.Status, tooLong.Code));
    }

    [Fact]
    public async Task An_unban_removes_every_ban_of_the_user_and_counts_neither_removed_bans_nor_other_users()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api("http", worker);
        var mallory = "mallory-" + Guid.NewGuid().ToString("N")[..6];
        var bystander = mallory + "x"; // a user whose encoded name may share mallory's prefix
        const int Bans = 12;
        for (var i = 0; i < Bans; i++)
        {
            await api.OkAsync("ban", new { user = mallory, ttl_seconds = 3600 });
            await Task.Delay(2); // one key per ban: {user}.{banned_at in ms}
        }

        await api.OkAsync("ban", new { user = bystander, ttl_seconds = 3600 });
        var token = _tokens.Create(mallory, subRooms: [">"], issuedAt: DateTime.UtcNow.AddMinutes(-1));
        Assert.Equal(401, await UpgradeStatusAsync(worker, token));

        // Each ban once; then the purge markers they leave in the bucket are listed but not counted.
        Assert.Equal(Bans, (await api.OkAsync("unban", new { user = mallory }))["removed"]!.GetValue<int>());
        Assert.Equal(101, await UpgradeStatusAsync(worker, token));
        Assert.Equal(0, (await api.OkAsync("unban", new { user = mallory }))["removed"]!.GetValue<int>());
        Assert.Equal(1, (await api.OkAsync("unban", new { user = bystander }))["removed"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task A_ban_refuses_the_users_older_tokens_on_every_worker_and_after_a_restart_until_unbanned(string adapter)
    {
        await using var a = await WorkerHost.StartAsync(nats.Server, Settings());
        var b = await WorkerHost.StartAsync(nats.Server, Settings());
        var bStopped = false;
        try
        {
            await using var api = Api(adapter, a);
            var mallory = "mallory-" + Guid.NewGuid().ToString("N")[..6];
            var oldToken = _tokens.Create(mallory, subRooms: [">"], pubRooms: [">"]);
            await using var open = await TestClient.ConnectAsync(new Uri($"{b.WebSocketUrl}?access_token={oldToken}"));
            await open.JoinAndWaitAsync(Names.Room("ban"));

            var ban = await api.OkAsync("ban", new { user = mallory, ttl_seconds = 3600, reason = "abuse" });
            Assert.True(ban["connections"]!.GetValue<int>() == 1, ban.ToJsonString());
            var bannedAt = ban["banned_at"]!.GetValue<long>();
            Assert.Equal(bannedAt + 3_600_000, ban["expires_at"]!.GetValue<long>());
            Assert.Equal((WebSocketCloseStatus)CloseCodes.Forbidden, await open.Closed.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.Equal("banned", open.Socket.CloseStatusDescription);

            // The old token is refused on both workers, for every transport; a token issued after the ban is accepted.
            Assert.Equal(401, await UpgradeStatusAsync(b, oldToken));
            Assert.Equal(401, await UpgradeStatusAsync(a, oldToken));
            Assert.Equal(401, await HttpPublishStatusAsync(a, oldToken));
            var newer = _tokens.Create(mallory, subRooms: [">"], issuedAt: DateTimeOffset.FromUnixTimeMilliseconds(bannedAt).UtcDateTime.AddSeconds(1));
            Assert.Equal(101, await UpgradeStatusAsync(b, newer));
            await using (var fresh = await TestClient.ConnectAsync(new Uri($"{a.WebSocketUrl}?access_token={newer}")))
            {
                // ... and a connection with the newer token cannot go back to an old one with auth.refresh.
                await fresh.SendAsync(new() { ["type"] = MessageTypes.AuthRefresh, ["id"] = "r", ["payload"] = new Dictionary<string, object?> { ["token"] = oldToken } });
                Assert.Equal(ErrorCodes.Unauthorized, (await fresh.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);
            }


            // A worker started after the ban reads it from the bucket.
            await b.DisposeAsync();
            bStopped = true;
            await using var restarted = await WorkerHost.StartAsync(nats.Server, Settings());
            Assert.Equal(401, await UpgradeStatusAsync(restarted, oldToken));

            var unban = await api.OkAsync("unban", new { user = mallory });
            Assert.Equal(1, unban["removed"]!.GetValue<int>());
            Assert.Equal(101, await UpgradeStatusAsync(restarted, oldToken));
            Assert.Equal(101, await UpgradeStatusAsync(a, oldToken));
        }
        finally
        {
            if (!bStopped)
            {
                await b.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_ban_ends_by_itself_at_its_ttl()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var api = Api("http", worker);
        var user = "temp-" + Guid.NewGuid().ToString("N")[..6];
        var token = _tokens.Create(user, subRooms: [">"]);
        await api.OkAsync("ban", new { user, ttl_seconds = 2 });
        Assert.Equal(401, await UpgradeStatusAsync(worker, token));
        await Eventually.TrueAsync(async () => await UpgradeStatusAsync(worker, token) == 101, TimeSpan.FromSeconds(15), "the ban expired");
    }

    /// <summary>The HTTP status of a WebSocket upgrade with <paramref name="token"/> (101 when accepted).</summary>
    internal static async Task<int> UpgradeStatusAsync(WorkerHost worker, string token)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        try
        {
            await socket.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"), CancellationToken.None);
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
            return 101;
        }
        catch (WebSocketException)
        {
            return (int)socket.HttpStatusCode;
        }
    }

    private static async Task<int> HttpPublishStatusAsync(WorkerHost worker, string token)
    {
        using var http = new HttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(worker.HttpUrl, $"/api/rooms/{Names.Room("ban")}/messages"))
        {
            Content = new StringContent("""{"type":"chat.message","payload":1}"""),
        };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", token);
        using var response = await http.SendAsync(request);
        return (int)response.StatusCode;
    }
}
