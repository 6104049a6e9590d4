using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using NATS.Client.Core;

namespace Bridge.Tests.Security;

/// <summary>
/// Room grants from the token (NATS-style wildcards) for join and publish, the user's private room, and attempts
/// to escape a grant through room names: no message ever reaches or leaves a subject outside the grant.
/// </summary>
public sealed class PermissionTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IAsyncLifetime
{
    private static readonly HttpClient Http = new();
    private readonly Tokens _tokens = new();
    private WorkerHost _worker = null!;
    private NatsConnection _observer = null!;
    private INatsSub<byte[]> _everything = null!;
    private string _token = null!;

    public async Task InitializeAsync()
    {
        _worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(
            ("Bridge:Auth:AllowedOrigins:0", "https://app.example")));
        _observer = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        _everything = await _observer.SubscribeCoreAsync<byte[]>("rooms.>");
        await _observer.PingAsync();
        _token = _tokens.Create("alice", subRooms: ["chat.>", "devices.site1.*"], pubRooms: ["chat.general", "devices.site1.*"]);
    }

    public async Task DisposeAsync()
    {
        await _everything.DisposeAsync();
        await _observer.DisposeAsync();
        await _worker.DisposeAsync();
        _tokens.Dispose();
    }

    private Task<TestClient> ConnectAsync(string? token = null) =>
        TestClient.ConnectAsync(new Uri($"{_worker.WebSocketUrl}?access_token={token ?? _token}"));

    [Theory]
    [InlineData("chat.general", true)]
    [InlineData("chat.a.b.c", true)]
    [InlineData("chat", false)] // '>' needs at least one more token
    [InlineData("devices.site1.pump7", true)]
    [InlineData("devices.site1.pump7.temp", false)] // '*' is exactly one token
    [InlineData("devices.site2.pump7", false)]
    [InlineData("devices.site1", false)]
    [InlineData("user.alice", true)] // the private room, without being listed
    [InlineData("user.alice.inbox", true)]
    [InlineData("user.bob", false)]
    [InlineData("user.alicex", false)]
    [InlineData("admin", false)]
    public async Task Join_follows_the_grant(string room, bool allowed)
    {
        await using var client = await ConnectAsync();
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room, ["id"] = "j1" });
        var answer = await client.WaitForAsync(f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error);
        if (allowed)
        {
            Assert.Equal(MessageTypes.RoomJoined, answer.Type);
        }
        else
        {
            Assert.Equal(ErrorCodes.Forbidden, answer.ErrorCode);
            Assert.Equal("j1", answer.Payload?["ref"]?.GetValue<string>());
            // The connection stays and still works.
            await client.JoinAndWaitAsync("chat.general");
        }
    }

    [Fact]
    public async Task Reading_history_with_room_sync_needs_the_join_grant()
    {
        await using var backend = await ConnectAsync(_tokens.Create("backend", subRooms: [">"], pubRooms: [">"]));
        await backend.PublishAsync("secret.plans", new { text = "not for alice" }, id: "s1");
        await backend.WaitForAsync(f => f.Type == MessageTypes.Ack);

        await using var alice = await ConnectAsync();
        await alice.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = "secret.plans", ["id"] = "sync-1" });
        var answer = await alice.WaitForAsync(f => f.Type is MessageTypes.RoomState or MessageTypes.Error);
        Assert.Equal(ErrorCodes.Forbidden, answer.ErrorCode);
        Assert.DoesNotContain("not for alice", answer.ToString(), StringComparison.Ordinal);

        await alice.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = "chat.general", ["id"] = "sync-2" });
        Assert.Equal(MessageTypes.RoomState, (await alice.WaitForAsync(f => f.Type is MessageTypes.RoomState or MessageTypes.Error)).Type);
    }

    [Fact]
    public async Task Publish_follows_the_grant_and_nothing_outside_it_reaches_NATS()
    {
        await using var client = await ConnectAsync();
        var refused = new[] { "chat.other", "devices.site2.x", "user.bob", "admin" };
        foreach (var room in refused)
        {
            await client.PublishAsync(room, new { text = "nope" }, id: "p-" + room);
            var error = await client.WaitForAsync(f => f.Type == MessageTypes.Error && f.Payload?["ref"]?.GetValue<string>() == "p-" + room);
            Assert.Equal(ErrorCodes.Forbidden, error.ErrorCode);
        }

        foreach (var room in new[] { "chat.general", "devices.site1.pump7", "user.alice" })
        {
            await client.PublishAsync(room, new { text = "ok" }, id: "p-" + room);
            var ack = await client.WaitForAsync(f => f.Type == MessageTypes.Ack && f.Id == "p-" + room);
            Assert.True(ack.Seq > 0);
        }

        var seen = await DrainSubjectsAsync(3);
        Assert.Equal(["rooms.chat.general", "rooms.devices.site1.pump7", "rooms.user.alice"], seen.Order());
    }

    public static TheoryData<string> EscapeAttempts() =>
    [
        "chat.>", "chat.*", "chat..general", "chat.general.", ".chat.general", "chat general", "chat.general ", "chat\tgeneral",
        "chat.general\u0000", "chat.general\r\nPUB rooms.admin 2", "ch\u0430t.general", "chat.gener\u0430l", "\uff43hat.general",
        "chat.general\u200b", "chat." + new string('a', 200), ">", "*", "user.*", "user.>", "user.alice.>",
    ];

    [Theory]
    [MemberData(nameof(EscapeAttempts))]
    public async Task Room_names_cannot_widen_a_grant(string room)
    {
        await using var client = await ConnectAsync();
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room, ["id"] = "j" });
        var join = await client.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.RoomJoined);

        // A well-formed room pattern is a join of every room it matches (§4): joined only when the grant (chat.>, and
        // the user's own user.alice.>) covers all of them; too broad or beyond the grant is refused.
        var expected = room switch
        {
            "chat.>" or "chat.*" or "user.alice.>" => MessageTypes.RoomJoined,
            ">" or "*" => ErrorCodes.PatternTooBroad,
            "user.*" or "user.>" => ErrorCodes.Forbidden,
            _ => ErrorCodes.InvalidRoom,
        };
        Assert.Equal(expected, join.Type == MessageTypes.RoomJoined ? join.Type : join.ErrorCode);

        await client.PublishAsync(room, new { text = "escape" }, id: "p");
        var publish = await client.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.Ack);
        Assert.Equal(ErrorCodes.InvalidRoom, publish.ErrorCode);

        // A granted publish after the attempts is the only thing that reaches NATS.
        await client.PublishAsync("chat.general", new { text = "marker" }, id: "marker");
        await client.WaitForAsync(f => f.Type == MessageTypes.Ack);
        Assert.Equal(["rooms.chat.general"], await DrainSubjectsAsync(1));
    }

    [Fact]
    public async Task A_user_never_receives_messages_of_rooms_outside_the_grant()
    {
        await using var alice = await ConnectAsync();
        await using var backend = await ConnectAsync(_tokens.Create("backend", subRooms: [">"], pubRooms: [">"]));
        await alice.JoinAndWaitAsync("chat.general");
        await backend.PublishAsync("chatter.general", new { text = "not for alice" });
        await backend.PublishAsync("chat.general", new { text = "for alice" });
        var first = await alice.WaitForAsync(f => f.Type == "chat.message");
        Assert.Equal("chat.general", first.Room);
        Assert.True(await alice.NothingArrivesAsync(f => f.Room == "chatter.general", TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Sse_poll_and_http_publish_refuse_rooms_outside_the_grant_with_403()
    {
        foreach (var path in new[] { "/sse?rooms=chat.general,admin", "/poll?rooms=admin" })
        {
            using var response = await Http.GetAsync(new Uri(_worker.HttpUrl, $"{path}&access_token={_token}"), HttpCompletionOption.ResponseHeadersRead);
            Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
            Assert.Contains(ErrorCodes.Forbidden, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using var publish = new HttpRequestMessage(HttpMethod.Post, new Uri(_worker.HttpUrl, "/api/rooms/chat.other/messages"))
        {
            Content = new StringContent("""{"type":"chat.message","payload":{}}""", Encoding.UTF8, "application/json"),
        };
        publish.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _token);
        using var refused = await Http.SendAsync(publish);
        Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
        Assert.Empty(await DrainSubjectsAsync(0));
    }

    [Theory]
    [InlineData("https://evil.example", false)]
    [InlineData("http://app.example", false)]
    [InlineData("https://app.example.evil.example", false)]
    [InlineData("https://app.example", true)]
    [InlineData(null, true)] // not a browser
    [InlineData("same", true)] // the page this worker served
    public async Task Upgrades_from_other_origins_are_refused(string? origin, bool allowed)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        if (origin is not null)
        {
            socket.Options.SetRequestHeader("Origin", origin == "same" ? $"http://{_worker.HttpUrl.Authority}" : origin);
        }

        try
        {
            await socket.ConnectAsync(new Uri($"{_worker.WebSocketUrl}?access_token={_token}"), CancellationToken.None);
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
        }
        catch (WebSocketException)
        {
        }

        Assert.Equal(allowed ? HttpStatusCode.SwitchingProtocols : HttpStatusCode.Forbidden, socket.HttpStatusCode);
    }

    /// <summary>Subjects of the messages that reached NATS since the last call (waits for <paramref name="expected"/>, then a moment more).</summary>
    private async Task<List<string>> DrainSubjectsAsync(int expected)
    {
        var subjects = new List<string>();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        while (subjects.Count < expected)
        {
            var msg = await _everything.Msgs.ReadAsync(cts.Token);
            subjects.Add(msg.Subject);
        }

        await Task.Delay(200);
        while (_everything.Msgs.TryRead(out var more))
        {
            subjects.Add(more.Subject);
        }

        return subjects;
    }
}
