using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Bridge.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Bridge.Worker.Security;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Bridge.Tests.Security;

/// <summary>Public keys from a JWKS URL, and key rotation through a reloaded key set (on a real and a fake clock).</summary>
public sealed class KeySetTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private readonly Tokens _tokens = new();
    private readonly Tokens _next = new();

    public void Dispose()
    {
        _tokens.Dispose();
        _next.Dispose();
    }

    [Fact]
    public async Task Keys_from_a_jwks_url_verify_rs256_and_es256_tokens()
    {
        var jwks = _tokens.JwksJson;
        await using var server = await ServeAsync(() => jwks);
        await using var worker = await WorkerHost.StartAsync(nats.Server,
            ("Bridge:Auth:AllowAnonymous", "false"), ("Bridge:Auth:JwksUrl", server.Url + "jwks.json"), ("Bridge:Auth:ClockSkew", "00:00:00"));

        Assert.Equal(HttpStatusCode.SwitchingProtocols, await StatusAsync(worker, _tokens.Create(credentials: _tokens.Rs256)));
        Assert.Equal(HttpStatusCode.SwitchingProtocols, await StatusAsync(worker, _tokens.Create(credentials: _tokens.Es256)));
        // No HMAC secret is configured: an HS256 token cannot be verified, whatever its secret.
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(worker, _tokens.Create(credentials: _tokens.Hs256)));
        Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(worker, _next.Create(credentials: _next.Rs256)));
    }

    [Fact]
    public async Task A_rotated_key_set_is_picked_up_without_a_restart()
    {
        await WithKeyFileAsync("bridge-rotate-", async path =>
        {
            await using var worker = await WorkerHost.StartAsync(nats.Server,
                ("Bridge:Auth:AllowAnonymous", "false"), ("Bridge:Auth:JwksPath", path), ("Bridge:Auth:JwksRefreshInterval", "00:00:01"));
            var newKeyToken = _next.Create(credentials: _next.Rs256);
            Assert.Equal(HttpStatusCode.SwitchingProtocols, await StatusAsync(worker, _tokens.Create(credentials: _tokens.Rs256)));
            Assert.Equal(HttpStatusCode.Unauthorized, await StatusAsync(worker, newKeyToken));

            // Step 1 of a rotation: publish the new key next to the old one (different kid).
            var both = JsonNode.Parse(_tokens.JwksJson)!;
            foreach (var key in JsonNode.Parse(_next.JwksJson)!["keys"]!.AsArray())
            {
                key!["kid"] = key["kid"]!.GetValue<string>() + "-next";
                both["keys"]!.AsArray().Add(key.DeepClone());
            }

            await File.WriteAllTextAsync(path, both.ToJsonString());
            var rotated = _next.Create(credentials: NextRs256);
            await Eventually.TrueAsync(async () => await StatusAsync(worker, rotated) == HttpStatusCode.SwitchingProtocols,
                TimeSpan.FromSeconds(10), "the new key is loaded");
            Assert.Equal(HttpStatusCode.SwitchingProtocols, await StatusAsync(worker, _tokens.Create(credentials: _tokens.Rs256)));

            // Step 2: drop the old key; its tokens are refused from then on.
            await File.WriteAllTextAsync(path, NextKeysOnly());
            await Eventually.TrueAsync(async () => await StatusAsync(worker, _tokens.Create(credentials: _tokens.Rs256)) == HttpStatusCode.Unauthorized,
                TimeSpan.FromSeconds(10), "the old key is dropped");
            Assert.Equal(HttpStatusCode.SwitchingProtocols, await StatusAsync(worker, rotated));
        });
    }

    [Fact]
    public async Task A_changed_key_file_is_loaded_once_the_refresh_interval_has_passed_on_the_workers_clock()
    {
        // The reload runs on the worker's TimeProvider: on a fake clock a ten-minute interval passes at once.
        await WithKeyFileAsync("bridge-reload-", async path =>
        {
            var time = new FakeTimeProvider();
            using var keys = await StartKeysAsync(new AuthOptions { JwksPath = path, JwksRefreshInterval = TimeSpan.FromMinutes(10) }, time);
            var before = keys.Current.Select(k => k.KeyId).ToList();

            await RotateOnFakeClockAsync(path, keys, time);

            Assert.Contains("rsa-1", before);
            Assert.DoesNotContain("rsa-1", keys.Current.Select(k => k.KeyId));
            await keys.StopAsync(CancellationToken.None);
        });
    }

    [Fact]
    public async Task Tokens_share_one_set_of_validation_parameters_until_the_key_set_is_reloaded()
    {
        await WithKeyFileAsync("bridge-parameters-", async path =>
        {
            var time = new FakeTimeProvider();
            var options = Options.Create(new AuthOptions { JwksPath = path, JwksRefreshInterval = TimeSpan.FromMinutes(10), Issuer = Tokens.Issuer, Audience = Tokens.Audience });
            using var keys = await StartKeysAsync(options.Value, time);
            var validator = new TokenValidator(keys, options, new NoBans());

            var first = validator.Parameters;
            Assert.NotNull((await validator.ValidateAsync(_tokens.Create(subject: "alice", credentials: _tokens.Rs256))).Identity);
            Assert.NotNull((await validator.ValidateAsync(_tokens.Create(subject: "bob", credentials: _tokens.Es256))).Identity);
            Assert.Same(first, validator.Parameters);

            await RotateOnFakeClockAsync(path, keys, time);

            // The rotated set: new parameters holding the new key, and the old key's tokens refused.
            Assert.NotNull((await validator.ValidateAsync(_next.Create(credentials: NextRs256))).Identity);
            Assert.Equal("signature", (await validator.ValidateAsync(_tokens.Create(credentials: _tokens.Rs256))).Reason);
            Assert.NotSame(first, validator.Parameters);
            Assert.Contains(validator.Parameters.IssuerSigningKeys, k => k.KeyId == "rsa-1-next");
            await keys.StopAsync(CancellationToken.None);
        });
    }

    /// <summary>
    /// Runs <paramref name="body"/> with a key file holding this test's key set, in a temporary folder of its own
    /// (named from <paramref name="prefix"/>) deleted afterwards.
    /// </summary>
    private async Task WithKeyFileAsync(string prefix, Func<string, Task> body)
    {
        var dir = Directory.CreateTempSubdirectory(prefix);
        try
        {
            var path = Path.Combine(dir.FullName, "jwks.json");
            await File.WriteAllTextAsync(path, _tokens.JwksJson);
            await body(path);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    /// <summary>A started key set with <paramref name="options"/>, reloaded on <paramref name="time"/>.</summary>
    private static async Task<SigningKeys> StartKeysAsync(AuthOptions options, TimeProvider time)
    {
        var keys = new SigningKeys(Options.Create(options), time, NullLogger<SigningKeys>.Instance);
        await keys.StartAsync(CancellationToken.None);
        return keys;
    }

    private sealed class NoBans : IRevokedTokens
    {
        public bool IsRevoked(string user, DateTimeOffset? issuedAt) => false;
    }

    /// <summary>The next key set's RSA key under the kid it has in <see cref="NextKeysOnly"/>: what a rotated issuer signs with.</summary>
    private Microsoft.IdentityModel.Tokens.SigningCredentials NextRs256 => new Microsoft.IdentityModel.Tokens.SigningCredentials(
            new Microsoft.IdentityModel.Tokens.RsaSecurityKey(((Microsoft.IdentityModel.Tokens.RsaSecurityKey)_next.Rs256.Key).Rsa) { KeyId = "rsa-1-next" },
            Microsoft.IdentityModel.Tokens.SecurityAlgorithms.RsaSha256);

    /// <summary>
    /// Writes the next key set alone to the key file and moves the fake clock on until <paramref name="keys"/> has loaded
    /// it. ExecuteAsync starts its timer on a background task (.NET 10): each check moves the clock on by one interval.
    /// </summary>
    private async Task RotateOnFakeClockAsync(string path, SigningKeys keys, FakeTimeProvider time)
    {
        await File.WriteAllTextAsync(path, NextKeysOnly());
        await Eventually.TrueAsync(
            () =>
            {
                time.Advance(TimeSpan.FromMinutes(10));
                return keys.Current.Any(k => k.KeyId == "rsa-1-next");
            },
            TimeSpan.FromSeconds(10),
            "the key set was not reloaded when the fake clock passed the refresh interval");
    }

    /// <summary>The next key set alone, its RSA key under a new kid: the old key dropped.</summary>
    private string NextKeysOnly() => _next.JwksJson.Replace("\"rsa-1\"", "\"rsa-1-next\"", StringComparison.Ordinal);

    private static async Task<HttpStatusCode> StatusAsync(WorkerHost worker, string token)
    {
        using var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        try
        {
            await socket.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"), CancellationToken.None);
            await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "probe", CancellationToken.None);
        }
        catch (WebSocketException)
        {
        }

        return socket.HttpStatusCode;
    }

    /// <summary>A small real HTTP server on loopback serving the key set, like an identity provider's JWKS endpoint.</summary>
    private static async Task<KeyServer> ServeAsync(Func<string> jwks)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        app.MapGet("/jwks.json", () => Results.Text(jwks(), "application/json"));
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new KeyServer(app, address.TrimEnd('/') + "/");
    }

    private sealed class KeyServer(WebApplication app, string url) : IAsyncDisposable
    {
        public string Url => url;

        public async ValueTask DisposeAsync() => await app.DisposeAsync();
    }
}
