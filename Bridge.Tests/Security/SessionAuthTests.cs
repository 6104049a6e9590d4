using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Bridge.Tests.Security;

/// <summary>Token expiry and refresh during a connection, start-up refusals, slowloris guards, and tokens kept out of logs.</summary>
public sealed class SessionAuthTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private readonly Tokens _tokens = new();

    public void Dispose() => _tokens.Dispose();

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Auth_refresh_whose_payload_is_not_an_object_is_told_so_in_the_same_words_in_both_formats(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var token = _tokens.Create(subRooms: ["r.>"], pubRooms: ["r.>"]);
        await using var client = await TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"), protocol);
        await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        var json = protocol == Subprotocols.Json;
        RawValue Refresh(string id, RawValue payload) => Raw.M(("type", Raw.S(MessageTypes.AuthRefresh)), ("id", Raw.S(id)), ("payload", payload));
        var cases = new List<(string Id, byte[] Frame, string Code, string Message)>
        {
            ("array", Encode(Refresh("array", Raw.L(Raw.N(1)))), ErrorCodes.InvalidArgument, "payload must be an object with a string 'token'"),
            ("token-in-array", Encode(Refresh("token-in-array", Raw.L(Raw.M(("token", Raw.S(token)))))), ErrorCodes.InvalidArgument, "payload must be an object with a string 'token'"),
            ("string", Encode(Refresh("string", Raw.S(token))), ErrorCodes.InvalidArgument, "payload must be an object with a string 'token'"),
            ("number", Encode(Refresh("number", Raw.N(5))), ErrorCodes.InvalidArgument, "payload must be an object with a string 'token'"),
            ("bool", Encode(Refresh("bool", Raw.B(true))), ErrorCodes.InvalidArgument, "payload must be an object with a string 'token'"),
            // Bytes: base64 with enc in JSON, bin in MessagePack.
            ("bytes", json
                ? Encoding.UTF8.GetBytes("""{"type":"auth.refresh","id":"bytes","enc":"base64","payload":"aGk="}""")
                : [.. Convert.FromHexString("83a474797065ac617574682e72656672657368a26964a56279746573a77061796c6f6164c4026869")],
                ErrorCodes.InvalidArgument, "payload must be an object with a string 'token'"),
            // Unchanged: no token in an object, a null payload, a token of the wrong kind.
            ("empty", Encode(Refresh("empty", Raw.M())), ErrorCodes.MissingField, "payload.token is required"),
            ("null", Encode(Refresh("null", Raw.Null)), ErrorCodes.MissingField, "payload.token is required"),
            ("kind", Encode(Refresh("kind", Raw.M(("token", Raw.N(1))))), ErrorCodes.InvalidArgument, "payload.token must be a string"),
        };
        foreach (var (id, frame, code, message) in cases)
        {
            await client.SendRawAsync(frame, WebSocketMessageType.Binary);
            var error = await client.WaitForAsync(f => f.Type == MessageTypes.Error && f.Payload?["ref"]?.GetValue<string>() == id);
            Assert.Equal((code, message), (error.ErrorCode, error.Payload?["message"]?.GetValue<string>()));
        }

        // The connection kept its token and works.
        await client.PublishAsync("r.x", new { n = 1 }, id: "after");
        Assert.Equal("after", (await client.WaitForAsync(f => f.Type == MessageTypes.Ack)).Id);

        byte[] Encode(RawValue frame) => json ? frame.ToJson() : frame.ToMsgPack();
    }

    [Fact]
    public async Task A_connection_is_closed_with_4001_when_its_token_expires()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var token = _tokens.Create(expiresIn: TimeSpan.FromSeconds(2), subRooms: ["r.>"]);
        await using var client = await TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"));
        await client.JoinAndWaitAsync("r.x");

        var closed = await client.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((WebSocketCloseStatus)CloseCodes.TokenExpired, closed);
    }

    [Fact]
    public async Task Auth_refresh_extends_the_connection_and_a_narrower_grant_leaves_rooms()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var token = _tokens.Create(expiresIn: TimeSpan.FromSeconds(3), subRooms: ["r.>"], pubRooms: ["r.>"]);
        await using var client = await TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"));
        await client.JoinAndWaitAsync("r.keep");
        await client.JoinAndWaitAsync("r.drop.me");

        // Another user's token is refused and changes nothing.
        await client.SendAsync(new() { ["type"] = MessageTypes.AuthRefresh, ["id"] = "a0", ["payload"] = new Dictionary<string, object?> { ["token"] = _tokens.Create("mallory") } });
        var refused = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal(ErrorCodes.Unauthorized, refused.ErrorCode);

        var fresh = _tokens.Create(expiresIn: TimeSpan.FromMinutes(5), subRooms: ["r.keep"], pubRooms: ["r.keep"]);
        await client.SendAsync(new() { ["type"] = MessageTypes.AuthRefresh, ["id"] = "a1", ["payload"] = new Dictionary<string, object?> { ["token"] = fresh } });
        var refreshed = await client.WaitForAsync(f => f.Type == MessageTypes.AuthRefreshed);
        Assert.Equal("a1", refreshed.Id);
        Assert.True(refreshed.Payload!["exp"]!.GetValue<long>() > DateTimeOffset.UtcNow.AddMinutes(4).ToUnixTimeSeconds());
        var left = await client.WaitForAsync(f => f.Type == MessageTypes.RoomLeft);
        Assert.Equal("r.drop.me", left.Room);
        Assert.Equal(ErrorCodes.Forbidden, left.Payload?["reason"]?.GetValue<string>());

        // Past the first token's expiry the connection is still open and works.
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.False(client.Closed.IsCompleted);
        await client.PublishAsync("r.keep", new { n = 1 }, id: "after");
        // The ack and the message itself may arrive in either order.
        var both = await client.CollectAsync(2, f => (f.Type == MessageTypes.Ack && f.Id == "after") || (f.Type == "chat.message" && f.Room == "r.keep"));
        Assert.Contains(both, f => f.Type == MessageTypes.Ack);
        Assert.True(await client.NothingArrivesAsync(f => f.Room == "r.drop.me", TimeSpan.FromMilliseconds(200)));
    }

    [Theory]
    [InlineData(60)]
    [InlineData(3650)]
    public async Task A_token_valid_for_longer_than_a_runtime_timer_waits_is_accepted_on_every_transport_and_by_refresh(int days)
    {
        // A runtime timer waits at most about 49.7 days; the expiry watch of a longer-lived token (a device's, a
        // service's) must not throw: the connection is accepted and stays open, as with any valid token.
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var token = _tokens.Create(expiresIn: TimeSpan.FromDays(days), subRooms: ["r.>"], pubRooms: ["r.>"]);
        await using var client = await TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"));
        await client.JoinAndWaitAsync("r.long");

        // A refresh to such a token from a short one: answered, and the connection outlives the short one's expiry.
        await using var refreshed = await TestClient.ConnectAsync(
            new Uri($"{worker.WebSocketUrl}?access_token={_tokens.Create(expiresIn: TimeSpan.FromSeconds(2), subRooms: ["r.>"])}"));
        await refreshed.JoinAndWaitAsync("r.long");
        await refreshed.SendAsync(new() { ["type"] = MessageTypes.AuthRefresh, ["id"] = "l1", ["payload"] = new Dictionary<string, object?> { ["token"] = token } });
        Assert.Equal("l1", (await refreshed.WaitForAsync(f => f.Type == MessageTypes.AuthRefreshed)).Id);

        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, "r.long", token: token);
        Assert.True(sse.Response.IsSuccessStatusCode, $"SSE: {(int)sse.Response.StatusCode}");
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);

        await Task.Delay(TimeSpan.FromSeconds(3));
        await client.PublishAsync("r.long", new { n = 1 }, id: $"long-{days}");
        await client.WaitForAsync(f => f.Type == "chat.message" && f.Id == $"long-{days}");
        await refreshed.WaitForAsync(f => f.Type == "chat.message" && f.Id == $"long-{days}");
        await sse.WaitForAsync(e => e.Event == "chat.message");
        Assert.False(client.Closed.IsCompleted);
        Assert.False(refreshed.Closed.IsCompleted);
    }

    [Fact]
    public async Task An_sse_stream_ends_when_its_token_expires()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var token = _tokens.Create(expiresIn: TimeSpan.FromSeconds(2), subRooms: ["r.>"]);
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, "r.x", token: token);
        Assert.True(sse.Response.IsSuccessStatusCode);
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        await Eventually.TrueAsync(() => worker.Get<Bridge.Worker.Connections.ConnectionTracker>().Count == 0,
            TimeSpan.FromSeconds(10), "the stream of an expired token is closed");
    }

    [Fact]
    public async Task A_long_poll_answers_when_its_token_expires_and_delivers_nothing_published_after()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var room = "r." + Names.Room("pollexp").Replace('.', '-');
        await using var publisher = await TestClient.ConnectAsync(
            new Uri($"{worker.WebSocketUrl}?access_token={_tokens.Create("pub", pubRooms: ["r.>"])}"));
        await publisher.PublishAsync(room, new { before = 1 }, id: "before");
        await publisher.WaitForAsync(f => f.Type == MessageTypes.Ack && f.Id == "before");

        var token = _tokens.Create(expiresIn: TimeSpan.FromSeconds(3), subRooms: ["r.>"]);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        var first = System.Text.Json.Nodes.JsonNode.Parse(
            await http.GetStringAsync(new Uri(worker.HttpUrl, $"/poll?rooms={room}&cursor=0&access_token={token}")))!;
        var cursor = first["cursor"]!.GetValue<string>();

        // The next poll waits (nothing new) past the token's expiry; a message published after it must not reach it.
        var waiting = http.GetStringAsync(new Uri(worker.HttpUrl, $"/poll?rooms={room}&cursor={Uri.EscapeDataString(cursor)}&access_token={token}"));
        await Task.Delay(TimeSpan.FromSeconds(5));
        await publisher.PublishAsync(room, new { after = 1 }, id: "after");
        await publisher.WaitForAsync(f => f.Type == MessageTypes.Ack && f.Id == "after");
        var answer = System.Text.Json.Nodes.JsonNode.Parse(await waiting)!;
        Assert.Empty(answer["messages"]!.AsArray());
        Assert.Equal(cursor, answer["cursor"]!.GetValue<string>());

        using var next = await http.GetAsync(new Uri(worker.HttpUrl, $"/poll?rooms={room}&cursor={Uri.EscapeDataString(cursor)}&access_token={token}"));
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, next.StatusCode);
    }

    [Fact]
    public async Task Production_configuration_without_a_key_refuses_to_start()
    {
        var error = await Assert.ThrowsAnyAsync<Exception>(() =>
            WorkerHost.StartAsync(nats.Server, ("Bridge:Auth:AllowAnonymous", "false")));
        Assert.Contains("no signing key", Flatten(error), StringComparison.Ordinal);

        var shortKey = await Assert.ThrowsAnyAsync<Exception>(() =>
            WorkerHost.StartAsync(nats.Server, ("Bridge:Auth:AllowAnonymous", "false"), ("Bridge:Auth:HmacSecret", "short")));
        Assert.Contains("at least 32 bytes", Flatten(shortKey), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_client_that_sends_its_headers_slowly_is_cut_off()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(("Bridge:Limits:HandshakeTimeout", "00:00:01")));
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, worker.HttpUrl.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /ws HTTP/1.1\r\nHost: x\r\n"));
        var started = DateTime.UtcNow;
        var buffer = new byte[1024];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        int read;
        try
        {
            // Kestrel answers 408 and closes; reading until the end of the stream proves the close.
            while ((read = await stream.ReadAsync(buffer, cts.Token)) > 0)
            {
            }
        }
        catch (IOException)
        {
        }

        Assert.InRange(DateTime.UtcNow - started, TimeSpan.Zero, TimeSpan.FromSeconds(8));
    }

    [Fact]
    public async Task An_idle_keep_alive_connection_is_closed_after_the_idle_timeout()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(("Bridge:Limits:IdleTimeout", "00:00:01")));
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, worker.HttpUrl.Port);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
        var buffer = new byte[4096];
        var read = await stream.ReadAsync(buffer);
        Assert.StartsWith("HTTP/1.1 200", Encoding.ASCII.GetString(buffer, 0, read), StringComparison.Ordinal);

        // Then nothing: Kestrel closes the idle connection (reads return 0) within the timeout plus its 1 s heartbeat.
        var started = DateTime.UtcNow;
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        try
        {
            while (await stream.ReadAsync(buffer, cts.Token) > 0)
            {
            }
        }
        catch (IOException)
        {
        }

        Assert.InRange(DateTime.UtcNow - started, TimeSpan.Zero, TimeSpan.FromSeconds(6));
    }

    [Fact]
    public async Task Tokens_never_reach_the_logs()
    {
        var logs = new CapturingLoggerProvider();
        await using var worker = await WorkerHost.StartAsync(nats.Server, builder =>
        {
            builder.Logging.AddProvider(logs);
            builder.Logging.SetMinimumLevel(LogLevel.Trace);
        }, _tokens.WorkerSettings(("Logging:LogLevel:Default", "Trace")));

        var good = _tokens.Create(subRooms: ["r.>"]);
        var expired = _tokens.Create(expiresIn: TimeSpan.FromMinutes(-1), notBefore: DateTime.UtcNow.AddMinutes(-5));
        await using (var client = await TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={good}")))
        {
            await client.JoinAndWaitAsync("r.x");
        }

        using var socket = new ClientWebSocket();
        await Assert.ThrowsAnyAsync<WebSocketException>(() => socket.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={expired}"), CancellationToken.None));
        using var http = new HttpClient();
        using var _ = await http.GetAsync(new Uri(worker.HttpUrl, $"/poll?rooms=r.x&access_token={expired}"));

        Assert.NotEmpty(logs.Lines);
        Assert.Contains(logs.Lines, l => l.Contains("expired", StringComparison.Ordinal));
        foreach (var token in new[] { good, expired })
        {
            var signature = token[(token.LastIndexOf('.') + 1)..];
            Assert.DoesNotContain(logs.Lines, l => l.Contains(signature, StringComparison.Ordinal));
        }
    }

    private static string Flatten(Exception e) => e is AggregateException a ? string.Join(" | ", a.Flatten().InnerExceptions.Select(Flatten)) : e.Message + " " + e.InnerException?.Message;

    private sealed class CapturingLoggerProvider : ILoggerProvider
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<string> _lines = new();

        public IReadOnlyCollection<string> Lines => _lines;

        public ILogger CreateLogger(string categoryName) => new Logger(categoryName, _lines);

        public void Dispose()
        {
        }

        private sealed class Logger(string category, System.Collections.Concurrent.ConcurrentQueue<string> lines) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull
            {
                lines.Enqueue($"{category} scope {state}");
                return null;
            }

            public bool IsEnabled(LogLevel logLevel) => true;

            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                var fields = state is IEnumerable<KeyValuePair<string, object?>> pairs ? string.Join(";", pairs.Select(p => $"{p.Key}={p.Value}")) : "";
                lines.Enqueue($"{category} {logLevel} {formatter(state, exception)} {fields} {exception}");
            }
        }
    }
}
