using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using NATS.Client.Core;

namespace Bridge.Tests.Infrastructure;

/// <summary>An answer of the backend API: the status (HTTP, or the Bridge-Status header over NATS), the JSON body, Retry-After.</summary>
public sealed record ApiResponse(int Status, JsonNode Body, string? RetryAfter)
{
    public string? Code => Body["code"]?.GetValue<string>();

    public override string ToString() => $"{Status} {Body.ToJsonString()}";
}

/// <summary>
/// The backend API from a backend's side, over either adapter: <c>POST /api/backend/{op}</c> with an API key or a
/// bearer token, or a NATS request to <c>bridge.api.{op}</c>. Bodies are sent as given (raw bytes or an object).
/// </summary>
public sealed class ApiClient : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    private readonly Uri? _worker;
    private readonly Action<HttpRequestMessage>? _authorize;
    private readonly NatsConnection? _nats;
    private readonly TimeSpan _natsTimeout;

    private ApiClient(Uri? worker, Action<HttpRequestMessage>? authorize, NatsConnection? nats, TimeSpan? natsTimeout = null)
    {
        _worker = worker;
        _authorize = authorize;
        _nats = nats;
        _natsTimeout = natsTimeout ?? TimeSpan.FromSeconds(20);
    }

    public string Adapter => _nats is null ? "http" : "nats";

    /// <summary>A random API key (the worker accepts keys of 32 characters or more).</summary>
    public static string NewKey(string prefix = "key") => $"{prefix}-{Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(20))}";

    /// <summary>Worker settings that configure <paramref name="key"/> as API key number <paramref name="index"/>.</summary>
    public static (string, string)[] KeySettings(string name, string key, int index = 0) =>
    [
        ($"Bridge:Api:Keys:{index}:Name", name),
        ($"Bridge:Api:Keys:{index}:Sha256", Bridge.Worker.Backend.ApiKeys.HashOf(key)),
    ];

    public static ApiClient WithKey(Uri worker, string key) => new(worker, r => r.Headers.Add("X-Api-Key", key), null);

    public static ApiClient WithToken(Uri worker, string token) =>
        new(worker, r => r.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token), null);

    public static ApiClient Anonymous(Uri worker) => new(worker, null, null);

    public static ApiClient OverNats(string natsUrl, NatsOpts? opts = null, TimeSpan? timeout = null) =>
        new(null, null, new NatsConnection((opts ?? NatsOpts.Default) with { Url = natsUrl }), timeout);

    /// <summary>The same operation over HTTP (key) or NATS, by name: the adapters' tests run once per adapter.</summary>
    public static ApiClient For(string adapter, Uri worker, string key, string natsUrl) =>
        adapter == "nats" ? OverNats(natsUrl) : WithKey(worker, key);

    public Task<ApiResponse> CallAsync(string op, object? body = null) =>
        SendAsync(op, body is byte[] raw ? raw : JsonSerializer.SerializeToUtf8Bytes(body ?? new { }));

    /// <summary>Sends <paramref name="body"/> as it is, labelled <paramref name="contentType"/> (HTTP header; NATS: a message header).</summary>
    public async Task<ApiResponse> SendAsync(string op, byte[] body, string contentType = "application/json")
    {
        if (_nats is not null)
        {
            var reply = await _nats.RequestAsync<byte[], byte[]>(
                $"bridge.api.{op}", body, headers: new NatsHeaders { ["Content-Type"] = contentType }, replyOpts: new NatsSubOpts { Timeout = _natsTimeout });
            var headers = reply.Headers;
            var status = headers is not null && headers.TryGetValue("Bridge-Status", out var s) ? int.Parse(s.ToString()) : 0;
            var retry = headers is not null && headers.TryGetValue("Retry-After", out var r) ? r.ToString() : null;
            return new ApiResponse(status, JsonNode.Parse(reply.Data ?? [])!, retry);
        }

        // Set without parsing: a header HttpClient cannot parse (";;;===") is sent as written.
        var content = new ByteArrayContent(body);
        content.Headers.TryAddWithoutValidation("Content-Type", contentType);
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(_worker!, $"/api/backend/{op}")) { Content = content };
        _authorize?.Invoke(request);
        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return new ApiResponse(
            (int)response.StatusCode,
            text.Length == 0 ? new JsonObject() : JsonNode.Parse(text)!,
            response.Headers.RetryAfter?.Delta is { } delta ? ((int)delta.TotalSeconds).ToString() : null);
    }

    /// <summary>The call must succeed: returns its body.</summary>
    public async Task<JsonNode> OkAsync(string op, object? body = null)
    {
        var response = await CallAsync(op, body);
        Assert.True(response.Status == 200, $"{Adapter} {op}: {response}");
        return response.Body;
    }

    public static byte[] Utf8(string json) => Encoding.UTF8.GetBytes(json);

    public async ValueTask DisposeAsync()
    {
        if (_nats is not null)
        {
            await _nats.DisposeAsync();
        }
    }
}
