using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Microsoft.Extensions.Logging;

namespace Bridge.Tests.Integration;

/// <summary>
/// Presence across workers, once per user (not per tab), held over the offline grace (long-polls, reconnects), and
/// expiry of a killed worker's users.
/// </summary>
public sealed class PresenceTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private static readonly HttpClient Http = new();
    private readonly Tokens _tokens = new();

    public void Dispose() => _tokens.Dispose();

    // A short grace, so the tests that wait for an offline do not wait 30 s; tests of the grace set their own.
    private (string, string)[] Settings(params (string, string)[] more) =>
        _tokens.WorkerSettings([("Bridge:Presence:Rooms:0", "p.>"), ("Bridge:Presence:OfflineGrace", "00:00:01"), .. more]);

    private static Func<Frame, bool> UpdateOf(string user) =>
        f => f.Type == MessageTypes.PresenceUpdate && f.Payload?["user"]?.GetValue<string>() == user;

    private Task<TestClient> ConnectAsync(Uri ws, string user) =>
        TestClient.ConnectAsync(new Uri($"{ws}?access_token={_tokens.Create(user, subRooms: [">"], pubRooms: [">"])}"));

    [Fact]
    public async Task A_join_on_one_worker_is_seen_from_another_once_per_user()
    {
        await using var a = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var b = await WorkerHost.StartAsync(nats.Server, Settings());
        var room = Names.Room("p");
        var alice = "alice-" + Guid.NewGuid().ToString("N")[..6];
        await using var watcher = await ConnectAsync(b.WebSocketUrl, "watcher");
        await watcher.JoinAndWaitAsync(room);

        var tab1 = await ConnectAsync(a.WebSocketUrl, alice);
        await tab1.JoinAndWaitAsync(room);
        var online = await watcher.WaitForAsync(f => f.Type == MessageTypes.PresenceUpdate && f.Payload?["user"]?.GetValue<string>() == alice);
        Assert.Equal("online", online.Payload!["status"]!.GetValue<string>());
        Assert.Equal(room, online.Room);

        // A second tab, on the other worker: no second update.
        var tab2 = await ConnectAsync(b.WebSocketUrl, alice);
        await tab2.JoinAndWaitAsync(room);
        Assert.True(await watcher.NothingArrivesAsync(f => f.Type == MessageTypes.PresenceUpdate && f.Payload?["user"]?.GetValue<string>() == alice,
            TimeSpan.FromMilliseconds(500)));

        await watcher.SendAsync(new() { ["type"] = MessageTypes.PresenceQuery, ["room"] = room, ["id"] = "q1" });
        var state = await watcher.WaitForAsync(f => f.Type == MessageTypes.PresenceState);
        Assert.Equal("q1", state.Id);
        var members = state.Payload!["members"]!.AsArray().Select(m => (User: m!["user"]!.GetValue<string>(), Connections: m["connections"]!.GetValue<int>())).ToList();
        Assert.Contains((alice, 2), members);
        Assert.Contains(("watcher", 1), members);

        // The first tab going leaves alice online; the last one takes her offline.
        await tab1.DisposeAsync();
        Assert.True(await watcher.NothingArrivesAsync(f => f.Type == MessageTypes.PresenceUpdate && f.Payload?["user"]?.GetValue<string>() == alice,
            TimeSpan.FromMilliseconds(500)));
        await tab2.DisposeAsync();
        var offline = await watcher.WaitForAsync(f => f.Type == MessageTypes.PresenceUpdate && f.Payload?["user"]?.GetValue<string>() == alice);
        Assert.Equal("offline", offline.Payload!["status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_batch_entry_left_before_its_turn_is_never_joined_so_no_one_sees_its_user_come_and_go()
    {
        // One request slot: a batch's entries join one after another while the connection reads on, so a room.leave
        // for the last entry arrives before its turn. That entry must not open the room or announce the user.
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings(("Bridge:Connections:MaxConcurrentRequests", "1")));
        var rooms = Enumerable.Range(0, 40).Select(_ => Names.Room("p")).ToList();
        var last = rooms[^1];
        var dave = "dave-" + Guid.NewGuid().ToString("N")[..6];
        await using var watcher = await ConnectAsync(worker.WebSocketUrl, "watcher");
        await watcher.JoinAndWaitAsync(last);

        await using var client = await ConnectAsync(worker.WebSocketUrl, dave);
        await client.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["id"] = "b-1",
            ["payload"] = new Dictionary<string, object?> { ["rooms"] = rooms.Select(r => new Dictionary<string, object?> { ["room"] = r }).ToList() },
        });
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = last });
        // room.left and the other entries' room.joined, in whatever order they come.
        var answers = await client.CollectAsync(
            rooms.Count, f => f.Type == MessageTypes.RoomJoined || (f.Type == MessageTypes.RoomLeft && f.Room == last), TimeSpan.FromSeconds(30));
        Assert.Single(answers, f => f.Type == MessageTypes.RoomLeft);
        Assert.DoesNotContain(last, answers.Where(f => f.Type == MessageTypes.RoomJoined).Select(f => f.Room));

        Assert.True(await watcher.NothingArrivesAsync(f => f.Type == MessageTypes.PresenceUpdate && f.Payload?["user"]?.GetValue<string>() == dave,
            TimeSpan.FromMilliseconds(500)));
        Assert.True(await client.NothingArrivesAsync(f => f.Room == last, TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Presence_is_opt_in_per_room_pattern_and_needs_the_grant()
    {
        await using var a = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var client = await TestClient.ConnectAsync(new Uri($"{a.WebSocketUrl}?access_token={_tokens.Create("bob", subRooms: ["p.mine", "other.>"])}"));
        await client.SendAsync(new() { ["type"] = MessageTypes.PresenceQuery, ["room"] = "other.room", ["id"] = "q" });
        Assert.Equal(ErrorCodes.PresenceDisabled, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);
        await client.SendAsync(new() { ["type"] = MessageTypes.PresenceQuery, ["room"] = "p.secret", ["id"] = "q" });
        Assert.Equal(ErrorCodes.Forbidden, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);

        // Joining a room without presence publishes nothing into it.
        await client.JoinAndWaitAsync("other.room");
        Assert.True(await client.NothingArrivesAsync(f => f.Type == MessageTypes.PresenceUpdate, TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task A_SIGKILLed_workers_users_disappear_after_the_ttl()
    {
        var settings = Settings(("Bridge:Presence:Ttl", "00:00:03"));
        await using var a = await WorkerHost.StartAsync(nats.Server, settings);
        await using var doomed = await WorkerChildProcess.StartAsync(nats.Server, settings);
        var room = Names.Room("p");
        var carol = "carol-" + Guid.NewGuid().ToString("N")[..6];
        await using var watcher = await ConnectAsync(a.WebSocketUrl, "watcher");
        await watcher.JoinAndWaitAsync(room);
        var victim = await ConnectAsync(doomed.WebSocketUrl, carol);
        await victim.JoinAndWaitAsync(room);
        await watcher.WaitForAsync(f => f.Type == MessageTypes.PresenceUpdate && f.Payload?["user"]?.GetValue<string>() == carol);
        Assert.Contains(carol, await QueryAsync(watcher, room));

        await doomed.KillAsync();
        var killed = DateTime.UtcNow;
        await Eventually.TrueAsync(async () => !(await QueryAsync(watcher, room)).Contains(carol), TimeSpan.FromSeconds(20),
            "the killed worker's entry expired");
        Assert.InRange(DateTime.UtcNow - killed, TimeSpan.Zero, TimeSpan.FromSeconds(3 + 5));
        await victim.DisposeAsync();
    }

    [Fact]
    public async Task Consecutive_long_polls_on_either_worker_keep_the_user_online_so_each_later_poll_waits_in_a_quiet_room()
    {
        // Each poll is a join and a leave. Without the grace every poll stored offline + online, and the next poll
        // with the cursor got them and answered at once, forever.
        var settings = Settings(("Bridge:Presence:OfflineGrace", "00:00:30"), ("Bridge:Connections:PollTimeout", "00:00:02"));
        await using var a = await WorkerHost.StartAsync(nats.Server, settings);
        await using var b = await WorkerHost.StartAsync(nats.Server, settings);
        var room = Names.Room("p");
        var erin = "erin-" + Guid.NewGuid().ToString("N")[..6];
        var token = _tokens.Create(erin, subRooms: [">"], pubRooms: [">"]);
        await using var watcher = await ConnectAsync(b.WebSocketUrl, "watcher");
        await watcher.JoinAndWaitAsync(room);

        var (cursor, _) = await PollAsync(a, room, token, cursor: null);
        Assert.Equal("online", (await watcher.WaitForAsync(UpdateOf(erin))).Payload!["status"]!.GetValue<string>());
        // The first poll may have answered before its own online was stored: one more poll takes it in.
        var (settled, _) = await PollAsync(b, room, token, cursor);

        foreach (var worker in new[] { a, b, a })
        {
            var (next, messages) = await PollAsync(worker, room, token, settled);
            Assert.Empty(messages);
            Assert.Equal(settled, next); // no new seq in the room: the poll waited out its PollTimeout
        }

        Assert.True(await watcher.NothingArrivesAsync(UpdateOf(erin), TimeSpan.FromMilliseconds(500)));
        Assert.Contains(erin, await QueryAsync(watcher, room));
    }

    [Fact]
    public async Task A_reconnect_within_the_grace_announces_nothing_and_a_real_leave_goes_offline_once_the_grace_has_passed()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings(("Bridge:Presence:OfflineGrace", "00:00:05")));
        var room = Names.Room("p");
        var frank = "frank-" + Guid.NewGuid().ToString("N")[..6];
        await using var watcher = await ConnectAsync(worker.WebSocketUrl, "watcher");
        await watcher.JoinAndWaitAsync(room);
        var first = await ConnectAsync(worker.WebSocketUrl, frank);
        await first.JoinAndWaitAsync(room);
        Assert.Equal("online", (await watcher.WaitForAsync(UpdateOf(frank))).Payload!["status"]!.GetValue<string>());

        // Dropped and back at once: still online for everyone, listed all along.
        await first.DisposeAsync();
        Assert.Contains(frank, await QueryAsync(watcher, room));
        var again = await ConnectAsync(worker.WebSocketUrl, frank);
        await again.JoinAndWaitAsync(room);
        Assert.True(await watcher.NothingArrivesAsync(UpdateOf(frank), TimeSpan.FromSeconds(1)));

        // Gone for good: offline, once, after the grace; then no longer listed.
        await again.DisposeAsync();
        var offline = await watcher.WaitForAsync(UpdateOf(frank), TimeSpan.FromSeconds(30));
        Assert.Equal("offline", offline.Payload!["status"]!.GetValue<string>());
        Assert.DoesNotContain(frank, await QueryAsync(watcher, room));
        Assert.True(await watcher.NothingArrivesAsync(UpdateOf(frank), TimeSpan.FromMilliseconds(500)));
    }

    [Fact]
    public async Task A_worker_restart_keeps_a_user_who_reconnects_elsewhere_online_and_takes_one_who_does_not_offline()
    {
        // A 10 min grace: only the shutdown's flush can store an offline within the test.
        var settings = Settings(("Bridge:Presence:OfflineGrace", "00:10:00"));
        await using var stays = await WorkerHost.StartAsync(nats.Server, settings);
        var stopping = await WorkerHost.StartAsync(nats.Server, settings);
        var room = Names.Room("p");
        var gina = "gina-" + Guid.NewGuid().ToString("N")[..6];
        var hank = "hank-" + Guid.NewGuid().ToString("N")[..6];
        await using var watcher = await ConnectAsync(stays.WebSocketUrl, "watcher");
        await watcher.JoinAndWaitAsync(room);
        await using var ginaClient = await ConnectAsync(stopping.WebSocketUrl, gina);
        await ginaClient.JoinAndWaitAsync(room);
        await watcher.WaitForAsync(UpdateOf(gina));
        await using var hankClient = await ConnectAsync(stopping.WebSocketUrl, hank);
        await hankClient.JoinAndWaitAsync(room);
        await watcher.WaitForAsync(UpdateOf(hank));

        // The drain closes both (1012, reconnect within ReconnectSpread, 5 s). Hank comes back on the other worker 2 s
        // later, as a client told reconnect_after_ms=2000 would (early enough in the spread that the machine's load
        // cannot push his join past it; late enough that a flush not waiting for him stores his offline); gina does not.
        var stop = stopping.DisposeAsync().AsTask();
        await hankClient.Closed.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(1012, hankClient.CloseStatus);
        await Task.Delay(TimeSpan.FromSeconds(2));
        await using var back = await ConnectAsync(stays.WebSocketUrl, hank);
        await back.JoinAndWaitAsync(room);
        await stop;

        Assert.Equal("offline", (await watcher.WaitForAsync(UpdateOf(gina), TimeSpan.FromSeconds(30))).Payload!["status"]!.GetValue<string>());
        Assert.True(await watcher.NothingArrivesAsync(UpdateOf(hank), TimeSpan.FromSeconds(1)));
        Assert.Contains(hank, await QueryAsync(watcher, room));
    }

    [Fact]
    public async Task A_stop_that_waits_for_users_in_their_grace_says_so_in_one_log_line_with_how_long()
    {
        // A user in the grace (10 min) when the worker stops: its stop waits ReconnectSpread (1 s here) + 1 s for them
        // to come back elsewhere, and says so before the pause (event 5005), instead of seeming to hang.
        var logs = new Bridge.Tests.Client.CapturingLoggerProvider();
        var worker = await WorkerHost.StartAsync(
            nats.Server,
            builder => builder.Logging.AddProvider(logs),
            Settings(("Bridge:Presence:OfflineGrace", "00:10:00"), ("Bridge:Shutdown:ReconnectSpread", "00:00:01")));
        // One user in two presence rooms is one user (not two (room, user) entries); the first room she left before
        // the stop, the second she is still in at the stop: the drain's leave holds her in the grace too.
        var (left, stillIn) = (Names.Room("p"), Names.Room("p"));
        await using var client = await ConnectAsync(worker.WebSocketUrl, "ivy-" + Guid.NewGuid().ToString("N")[..6]);
        await client.JoinAndWaitAsync(left);
        await client.JoinAndWaitAsync(stillIn);
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = left });
        await client.WaitForAsync(f => f.Type == MessageTypes.RoomLeft && f.Room == left);

        await worker.DisposeAsync();

        var waits = logs.Events.Where(e => e.Id == 5005).ToList();
        var wait = Assert.Single(waits);
        Assert.Equal(LogLevel.Information, wait.Level);
        var match = System.Text.RegularExpressions.Regex.Match(wait.Message, @"^Shutdown: waiting (\d+) ms before storing the offline of 1 users in their offline grace \(clients were told to reconnect within ReconnectSpread, 1000 ms, plus 1 s");
        Assert.True(match.Success, wait.Message);
        Assert.InRange(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 1, 2000);
    }

    private async Task<(string Cursor, List<JsonNode?> Messages)> PollAsync(WorkerHost worker, string room, string token, string? cursor)
    {
        var query = $"/poll?rooms={room}&access_token={token}" + (cursor is null ? "" : $"&cursor={Uri.EscapeDataString(cursor)}");
        var answer = await Http.GetFromJsonAsync<JsonObject>(new Uri(worker.HttpUrl, query));
        Assert.Empty(answer!["errors"]!.AsArray());
        return (answer["cursor"]!.GetValue<string>(), [.. answer["messages"]!.AsArray()]);
    }

    private static async Task<List<string>> QueryAsync(TestClient client, string room)
    {
        var id = Guid.NewGuid().ToString("N")[..8];
        await client.SendAsync(new() { ["type"] = MessageTypes.PresenceQuery, ["room"] = room, ["id"] = id });
        var state = await client.WaitForAsync(f => f.Type == MessageTypes.PresenceState && f.Id == id);
        return [.. state.Payload!["members"]!.AsArray().Select(m => m!["user"]!.GetValue<string>())];
    }
}
