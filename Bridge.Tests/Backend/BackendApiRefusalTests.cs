using System.Net.Http.Headers;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Backend;
using NATS.Client.Core;

namespace Bridge.Tests.Backend;

/// <summary>
/// What the backend API refuses: callers without a valid key or an admin token (401/403), callers over their rate
/// (429 with Retry-After), and malformed requests (400 with the field named), over both adapters. A refused
/// request stores nothing.
/// </summary>
public sealed class BackendApiRefusalTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private readonly Tokens _tokens = new();
    private readonly string _key = ApiClient.NewKey();
    private readonly string _otherKey = ApiClient.NewKey("other");

    public void Dispose() => _tokens.Dispose();

    private (string, string)[] Settings(params (string, string)[] more) =>
        _tokens.WorkerSettings([.. ApiClient.KeySettings("tests", _key), .. ApiClient.KeySettings("other", _otherKey, index: 1), .. more]);

    [Fact]
    public async Task Requests_without_a_valid_api_key_get_401_and_store_nothing()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        var room = Names.Room("auth");
        var publish = new { room, type = "chat.message", payload = 1 };

        var missing = await ApiClient.Anonymous(worker.HttpUrl).CallAsync("publish", publish);
        Assert.Equal((401, ErrorCodes.Unauthorized), (missing.Status, missing.Code));
        var wrong = await ApiClient.WithKey(worker.HttpUrl, _key[..^1] + (_key[^1] == '0' ? '1' : '0')).CallAsync("publish", publish);
        Assert.Equal((401, ErrorCodes.Unauthorized), (wrong.Status, wrong.Code));
        var tooShort = await ApiClient.WithKey(worker.HttpUrl, "short").CallAsync("publish", publish);
        Assert.Equal(401, tooShort.Status);
        using (var http = new HttpClient())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(worker.HttpUrl, "/api/backend/info"));
            using var response = await http.SendAsync(request);
            Assert.Contains("ApiKey", response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
        }

        // A Bearer header with more than one token (or none) is malformed, not a token with a bad signature.
        var admin = _tokens.Create("ops", claims: new Dictionary<string, object> { ["bridge_admin"] = true });
        foreach (var header in new[] { $"Bearer {admin} extra", $"Bearer {admin} {admin}" })
        {
            using var http = new HttpClient();
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(worker.HttpUrl, "/api/backend/info"));
            Assert.True(request.Headers.TryAddWithoutValidation("Authorization", header));
            using var response = await http.SendAsync(request);
            Assert.Equal(401, (int)response.StatusCode);
            Assert.Equal(
                """{"code":"unauthorized","message":"the Authorization header must be 'Bearer <jwt>': one token after the scheme, nothing else"}""",
                await response.Content.ReadAsStringAsync());
        }

        // A refusal of the API's own reads as written: "field 'room'", not "field \u0027room\u0027".
        using (var http = new HttpClient())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(worker.HttpUrl, "/api/backend/publish"))
            {
                Content = new StringContent("""{"type":"chat.message"}""", Encoding.UTF8, "application/json"),
            };
            request.Headers.Add("X-Api-Key", _key);
            using var response = await http.SendAsync(request);
            var body = await response.Content.ReadAsStringAsync();
            Assert.Equal(400, (int)response.StatusCode);
            Assert.Contains("'room'", body, StringComparison.Ordinal);
            Assert.DoesNotContain("\\u0027", body, StringComparison.Ordinal);
        }

        var stored = await ApiClient.WithKey(worker.HttpUrl, _key).OkAsync("history", new { room });
        Assert.Empty(stored["messages"]!.AsArray());

        // Both ways of showing a key work: X-Api-Key and Authorization: ApiKey.
        using (var http = new HttpClient())
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(worker.HttpUrl, "/api/backend/info"));
            request.Headers.Authorization = new AuthenticationHeaderValue("ApiKey", _otherKey);
            using var response = await http.SendAsync(request);
            Assert.Equal(200, (int)response.StatusCode);
        }
    }

    [Fact]
    public async Task A_token_without_the_admin_claim_gets_403_and_an_admin_token_is_accepted()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        var room = Names.Room("admin");
        var publish = new { room, type = "chat.message", payload = 1 };

        var user = await ApiClient.WithToken(worker.HttpUrl, _tokens.Create("alice", pubRooms: [">"])).CallAsync("publish", publish);
        Assert.Equal((403, ErrorCodes.Forbidden), (user.Status, user.Code));
        var asText = _tokens.Create("alice", claims: new Dictionary<string, object> { ["bridge_admin"] = "true" });
        Assert.Equal(403, (await ApiClient.WithToken(worker.HttpUrl, asText).CallAsync("publish", publish)).Status);
        var no = _tokens.Create("alice", claims: new Dictionary<string, object> { ["bridge_admin"] = false });
        Assert.Equal(403, (await ApiClient.WithToken(worker.HttpUrl, no).CallAsync("publish", publish)).Status);
        var forged = Tokens.Tamper(_tokens.Create("alice"), "bridge_admin", true);
        Assert.Equal(401, (await ApiClient.WithToken(worker.HttpUrl, forged).CallAsync("publish", publish)).Status);
        var expired = _tokens.Create("ops", expiresIn: TimeSpan.FromSeconds(-5), claims: new Dictionary<string, object> { ["bridge_admin"] = true });
        Assert.Equal(401, (await ApiClient.WithToken(worker.HttpUrl, expired).CallAsync("publish", publish)).Status);
        Assert.Empty((await ApiClient.WithKey(worker.HttpUrl, _key).OkAsync("history", new { room }))["messages"]!.AsArray());

        var admin = _tokens.Create("ops", claims: new Dictionary<string, object> { ["bridge_admin"] = true });
        await using var member = await TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={_tokens.Create("m", subRooms: [">"])}"));
        await member.JoinAndWaitAsync(room);
        await ApiClient.WithToken(worker.HttpUrl, admin).OkAsync("publish", publish);
        // An admin token's messages are from its subject.
        Assert.Equal("ops", (await member.WaitForAsync(f => f.Type == "chat.message")).Json["from"]!.GetValue<string>());
    }

    [Fact]
    public async Task Each_caller_has_its_own_rate_limit_and_over_it_gets_429_with_retry_after()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings(
            ("Bridge:Api:RequestsPerSecond", "1"), ("Bridge:Api:Burst", "3"), ("Bridge:Api:MaxBroadcastRooms", "3")));
        var api = ApiClient.WithKey(worker.HttpUrl, _key);
        for (var i = 0; i < 3; i++)
        {
            await api.OkAsync("info", new { scope = "worker" });
        }

        var limited = await api.CallAsync("info", new { scope = "worker" });
        Assert.Equal((429, ErrorCodes.RateLimited), (limited.Status, limited.Code));
        Assert.True(int.Parse(limited.RetryAfter!) >= 1);

        // Another key is not held back; a broadcast takes one token per room.
        var other = ApiClient.WithKey(worker.HttpUrl, _otherKey);
        await other.OkAsync("info", new { scope = "worker" });
        var broadcast = await other.CallAsync("broadcast", new { rooms = new[] { "r.a", "r.b", "r.c" }, type = "chat.message" });
        Assert.Equal(429, broadcast.Status);

        // Over NATS too (every NATS caller shares one bucket): the status and Retry-After travel as headers.
        await using var overNats = ApiClient.OverNats(nats.Server.Url);
        ApiResponse last;
        var tries = 0;
        do
        {
            last = await overNats.CallAsync("info", new { scope = "worker" });
        }
        while (last.Status == 200 && ++tries < 10);
        Assert.Equal(429, last.Status);
        Assert.Equal(ErrorCodes.RateLimited, last.Code);
        Assert.True(int.Parse(last.RetryAfter!) >= 1);
    }

    /// <summary>Requests that break one rule each: operation, body (ROOM becomes a fresh room), status, code.</summary>
    private static readonly (string Op, string Body, int Status, string Code)[] Malformed =
    [
        ("publish", """{"room":"a..b","type":"chat.message"}""", 400, ErrorCodes.InvalidRoom),
        ("publish", """{"room":"ROOM","type":"room.joined"}""", 400, ErrorCodes.UnknownType),
        ("publish", """{"room":"ROOM","type":"bad type"}""", 400, ErrorCodes.InvalidType),
        ("publish", """{"room":"ROOM"}""", 400, ErrorCodes.MissingField),
        ("publish", """{"room":"ROOM","type":"chat.message","id":"has space"}""", 400, ErrorCodes.InvalidId),
        ("publish", """{"room":"ROOM","type":"chat.message","colour":1}""", 400, ErrorCodes.InvalidArgument),
        ("publish", """{"room":"ROOM","type":"chat.message","from":"\ud800"}""", 400, ErrorCodes.BadFrame),
        ("publish", """{"room":"ROOM","type":"chat.message","payload":{"\udc00":1}}""", 400, ErrorCodes.BadFrame),
        ("publish", """{"room":"ROOM","type":"chat.message","from":"a\u0001b"}""", 400, ErrorCodes.InvalidArgument),
        ("publish", """{"room":"ROOM","type":"chat.message","from":7}""", 400, ErrorCodes.InvalidArgument),
        ("publish", """{"room":"ROOM","type":"chat.message","enc":"base64","payload":"***"}""", 400, ErrorCodes.BadFrame),
        ("publish", """{"room":"ROOM","room":"ROOM","type":"chat.message"}""", 400, ErrorCodes.BadFrame),
        ("publish", """{"room":"ROOM","type":"chat.message",""", 400, ErrorCodes.BadFrame),
        ("publish", """[1,2]""", 400, ErrorCodes.BadFrame),
        ("publish", """{"room":"ROOM","type":"chat.message","from":"~"}""", 400, ErrorCodes.BadFrame),
        ("publish", """{"room":"ROOM","type":"chat.message","payload":"~"}""", 400, ErrorCodes.BadFrame),
        ("broadcast", """{"rooms":[],"type":"chat.message"}""", 400, ErrorCodes.InvalidArgument),
        ("broadcast", """{"rooms":"ROOM","type":"chat.message"}""", 400, ErrorCodes.InvalidArgument),
        ("broadcast", """{"type":"chat.message"}""", 400, ErrorCodes.MissingField),
        ("broadcast", """{"rooms":["ROOM","ROOM"],"type":"chat.message"}""", 400, ErrorCodes.InvalidArgument),
        ("broadcast", """{"rooms":["ROOM","a b"],"type":"chat.message"}""", 400, ErrorCodes.InvalidRoom),
        ("broadcast", """{"rooms":["ROOM",5],"type":"chat.message"}""", 400, ErrorCodes.InvalidRoom),
        ("history", """{"room":"ROOM","latest":2,"after_seq":1}""", 400, ErrorCodes.InvalidArgument),
        ("history", """{"room":"ROOM","limit":0}""", 400, ErrorCodes.InvalidArgument),
        ("history", """{"room":"ROOM","limit":1000000}""", 400, ErrorCodes.InvalidArgument),
        ("history", """{"room":"ROOM","after_seq":-1}""", 400, ErrorCodes.InvalidArgument),
        ("history", """{"room":"ROOM","after_seq":"5"}""", 400, ErrorCodes.InvalidArgument),
        ("history", """{"room":"ROOM","after_seq":1.5}""", 400, ErrorCodes.InvalidArgument),
        ("history", """{"room":"ROOM","after_seq":9,"to_seq":9}""", 400, ErrorCodes.InvalidArgument),
        ("history", """{}""", 400, ErrorCodes.MissingField),
        ("rooms", """{"pattern":"a.>.b"}""", 400, ErrorCodes.InvalidArgument),
        ("rooms", """{"scope":"galaxy"}""", 400, ErrorCodes.InvalidArgument),
        ("presence", """{"room":"a*"}""", 400, ErrorCodes.InvalidRoom),
        ("disconnect", """{}""", 400, ErrorCodes.MissingField),
        ("disconnect", $$"""{"user":"{{new string('u', 300)}}"}""", 400, ErrorCodes.InvalidArgument),
        ("disconnect", $$"""{"user":"x","reason":"{{new string('r', 200)}}"}""", 400, ErrorCodes.InvalidArgument),
        ("ban", """{"user":"x","ttl_seconds":0}""", 400, ErrorCodes.InvalidArgument),
        ("ban", """{"user":"x","ttl_seconds":99999999999}""", 400, ErrorCodes.InvalidArgument),
        ("ban", """{"user":""}""", 400, ErrorCodes.MissingField),
        ("explode", """{}""", 404, ErrorCodes.NotFound),
    ];

    [Fact]
    public async Task A_malformed_request_gets_a_clear_error_over_both_adapters_and_stores_nothing()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings());
        await using var http = ApiClient.WithKey(worker.HttpUrl, _key);
        await using var overNats = ApiClient.OverNats(nats.Server.Url);
        foreach (var (op, body, status, code) in Malformed)
        {
            var room = Names.Room("bad");
            // "~" stands for a string holding the byte 0xFF, which no JSON text may contain.
            var bytes = Encoding.UTF8.GetBytes(body.Replace("ROOM", room, StringComparison.Ordinal))
                .SelectMany(b => b == (byte)'~' ? new byte[] { 0xFF } : [b]).ToArray();
            foreach (var api in new[] { http, overNats })
            {
                var answer = await api.SendAsync(op, bytes);
                Assert.True(answer.Status == status && answer.Code == code, $"{api.Adapter} {op} {body}: {answer}");
                Assert.False(string.IsNullOrEmpty(answer.Body["message"]?.GetValue<string>()));
            }

            Assert.Empty((await http.OkAsync("history", new { room }))["messages"]!.AsArray());
        }
    }

    [Fact]
    public async Task A_body_over_the_size_limit_gets_413()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings(("Bridge:Api:MaxRequestBytes", "1024")));
        var answer = await ApiClient.WithKey(worker.HttpUrl, _key).CallAsync("publish", new { room = "r", type = "t", payload = new string('x', 2000) });
        Assert.Equal((413, ErrorCodes.TooLarge), (answer.Status, answer.Code));
    }

    [Fact]
    public async Task With_the_api_disabled_neither_adapter_answers()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Settings(("Bridge:Api:Enabled", "false"), ("Bridge:Api:NatsPrefix", "off" + Guid.NewGuid().ToString("N")[..6])));
        Assert.Equal(404, (await ApiClient.WithKey(worker.HttpUrl, _key).CallAsync("info")).Status);
        await using var client = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var prefix = worker.Get<Microsoft.Extensions.Options.IOptions<ApiOptions>>().Value.NatsPrefix;
        await Assert.ThrowsAnyAsync<NatsException>(async () =>
            await client.RequestAsync<byte[], byte[]>($"{prefix}.api.info", "{}"u8.ToArray(), replyOpts: new NatsSubOpts { Timeout = TimeSpan.FromSeconds(1) }));
    }
}
