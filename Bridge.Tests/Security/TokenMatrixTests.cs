using System.Net;
using System.Net.Http.Headers;
using System.Net.WebSockets;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;
using Bridge.Worker.Limits;
using Microsoft.IdentityModel.Tokens;

namespace Bridge.Tests.Security;

/// <summary>
/// Every bad token is refused with 401 on every transport before anything is allocated for it (no socket, no
/// stream, no session, no connection count); good HS256, RS256 and ES256 tokens get in.
/// </summary>
public sealed class TokenMatrixTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IAsyncLifetime
{
    private static readonly HttpClient Http = new();
    private readonly Tokens _tokens = new();
    private WorkerHost _worker = null!;

    public static TheoryData<string> Transports() => ["ws-query", "ws-header", "sse", "poll", "publish"];

    public static TheoryData<string, string> BadTokensOnEveryTransport()
    {
        var data = new TheoryData<string, string>();
        foreach (var transport in Transports())
        {
            foreach (var bad in new[]
                     {
                         "none", "garbage", "wrong-key", "expired", "not-yet-valid", "wrong-audience", "wrong-issuer", "alg-none",
                         "tampered-sub", "tampered-grant", "rs-hs-confusion", "es-signed-with-other-key",
                     })
            {
                data.Add(transport, bad);
            }
        }

        return data;
    }

    public async Task InitializeAsync() =>
        _worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(("Bridge:Connections:PollTimeout", "00:00:01")));

    public async Task DisposeAsync()
    {
        await _worker.DisposeAsync();
        _tokens.Dispose();
    }

    [Theory]
    [MemberData(nameof(BadTokensOnEveryTransport))]
    public async Task A_bad_token_is_refused_with_401_before_anything_is_allocated(string transport, string bad)
    {
        var token = BadToken(bad);
        var (status, body) = await AttemptAsync(transport, token);

        Assert.Equal(HttpStatusCode.Unauthorized, status);
        if (body is not null)
        {
            Assert.Contains(ErrorCodes.Unauthorized, body, StringComparison.Ordinal);
            Assert.DoesNotContain(token ?? "\u0001", body, StringComparison.Ordinal);
        }

        Assert.Equal(0, _worker.Get<ConnectionTracker>().Count);
        Assert.Equal(0, _worker.Get<ConnectionLimits>().Total);
    }

    [Theory]
    [MemberData(nameof(Transports))]
    public async Task Good_tokens_of_each_algorithm_get_in(string transport)
    {
        foreach (var credentials in new[] { _tokens.Hs256, _tokens.Rs256, _tokens.Es256 })
        {
            var token = _tokens.Create(credentials: credentials, subRooms: ["r.>"], pubRooms: ["r.>"]);
            var (status, _) = await AttemptAsync(transport, token);
            Assert.True(status is HttpStatusCode.SwitchingProtocols or HttpStatusCode.OK, $"{credentials.Algorithm} on {transport}: {status}");
        }

        // Each attempt released what it held.
        await Eventually.TrueAsync(() => _worker.Get<ConnectionLimits>().Total == 0, because: "connection counts are released");
    }

    [Fact]
    public async Task An_authorization_header_that_is_not_bearer_and_one_token_is_refused_as_malformed_not_as_a_bad_signature()
    {
        var good = _tokens.Create(subRooms: ["r.>"], pubRooms: ["r.>"]);
        const string Malformed = "the Authorization header must be 'Bearer <jwt>': one token after the scheme, nothing else";
        foreach (var header in new[] { $"Bearer {good} extra", $"Bearer {good} {good}", $"Bearer {good}\t{good}", "Bearer    ", $"Basic {good}" })
        {
            foreach (var (method, path) in new[] { ("GET", "/sse?rooms=r.x"), ("GET", "/poll?rooms=r.x"), ("POST", "/api/rooms/r.x/messages") })
            {
                using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(_worker.HttpUrl, path));
                if (method == "POST")
                {
                    request.Content = new StringContent("""{"type":"chat.message","payload":{"text":"hi"}}""", Encoding.UTF8, "application/json");
                }

                Assert.True(request.Headers.TryAddWithoutValidation("Authorization", header));
                using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                var body = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{header} on {path}: {(int)response.StatusCode} {body}");
                // The message reads as written (no \u0027 or \u003C escapes), in the body and in the challenge.
                Assert.Equal($$"""{"code":"unauthorized","message":"{{Malformed}}"}""", body);
                Assert.Contains(Malformed, response.Headers.WwwAuthenticate.ToString(), StringComparison.Ordinal);
            }

            using var socket = new ClientWebSocket();
            socket.Options.CollectHttpResponseDetails = true;
            socket.Options.SetRequestHeader("Authorization", header.Replace('\t', ' '));
            await Assert.ThrowsAnyAsync<WebSocketException>(() => socket.ConnectAsync(_worker.WebSocketUrl, CancellationToken.None));
            Assert.Equal(HttpStatusCode.Unauthorized, socket.HttpStatusCode);
        }

        // One token, in any case of the scheme and with spaces around it, still gets in.
        foreach (var header in new[] { $"Bearer {good}", $"bearer   {good}  " })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_worker.HttpUrl, "/poll?rooms=r.x"));
            Assert.True(request.Headers.TryAddWithoutValidation("Authorization", header));
            using var response = await Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }
    }

    private string? BadToken(string kind) => kind switch
    {
        "none" => null,
        "garbage" => "not-a-jwt",
        "wrong-key" => _tokens.Create(credentials: new SigningCredentials(
            new SymmetricSecurityKey(Encoding.UTF8.GetBytes("another-secret-that-is-long-enough-0123456789")), SecurityAlgorithms.HmacSha256)),
        "expired" => _tokens.Create(expiresIn: TimeSpan.FromMinutes(-1), notBefore: DateTime.UtcNow.AddMinutes(-5)),
        "not-yet-valid" => _tokens.Create(notBefore: DateTime.UtcNow.AddMinutes(5), expiresIn: TimeSpan.FromMinutes(10)),
        "wrong-audience" => _tokens.Create(audience: "someone-else"),
        "wrong-issuer" => _tokens.Create(issuer: "https://evil.example"),
        "alg-none" => Tokens.AlgNone("alice", ["r.>"]),
        "tampered-sub" => Tokens.Tamper(_tokens.Create(subRooms: ["r.>"]), "sub", "admin"),
        "tampered-grant" => Tokens.Tamper(_tokens.Create(subRooms: ["other"]), "sub_rooms", new[] { ">" }),
        "rs-hs-confusion" => _tokens.RsHsConfusion(),
        "es-signed-with-other-key" => _tokens.Create(credentials: new SigningCredentials(
            new ECDsaSecurityKey(System.Security.Cryptography.ECDsa.Create(System.Security.Cryptography.ECCurve.NamedCurves.nistP256)) { KeyId = "ec-1" },
            SecurityAlgorithms.EcdsaSha256)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    /// <summary>One request on a transport with the token; the HTTP status and (for plain HTTP answers) the body.</summary>
    private async Task<(HttpStatusCode Status, string? Body)> AttemptAsync(string transport, string? token)
    {
        var baseUrl = _worker.HttpUrl;
        var query = token is null ? "" : $"access_token={Uri.EscapeDataString(token)}";
        switch (transport)
        {
            case "ws-query":
            case "ws-header":
                {
                    using var socket = new ClientWebSocket();
                    socket.Options.CollectHttpResponseDetails = true;
                    if (transport == "ws-header" && token is not null)
                    {
                        socket.Options.SetRequestHeader("Authorization", "Bearer " + token);
                    }

                    var url = transport == "ws-query" && token is not null ? new Uri(_worker.WebSocketUrl + "?" + query) : _worker.WebSocketUrl;
                    try
                    {
                        await socket.ConnectAsync(url, CancellationToken.None);
                        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
                    }
                    catch (WebSocketException)
                    {
                        // Refused upgrade: the status is in HttpStatusCode.
                    }

                    return (socket.HttpStatusCode, null);
                }

            case "sse":
            case "poll":
                {
                    var path = transport == "sse" ? "/sse" : "/poll";
                    using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUrl, $"{path}?rooms=r.x{(query.Length > 0 ? "&" + query : "")}"));
                    using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
                    var body = response.IsSuccessStatusCode ? null : await response.Content.ReadAsStringAsync();
                    return (response.StatusCode, body);
                }

            case "publish":
                {
                    using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(baseUrl, "/api/rooms/r.x/messages"))
                    {
                        Content = new StringContent("""{"type":"chat.message","payload":{"text":"hi"}}""", Encoding.UTF8, "application/json"),
                    };
                    if (token is not null)
                    {
                        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
                    }

                    using var response = await Http.SendAsync(request);
                    return (response.StatusCode, await response.Content.ReadAsStringAsync());
                }

            default:
                throw new ArgumentOutOfRangeException(nameof(transport));
        }
    }
}
