using Microsoft.Extensions.Options;

namespace Bridge.Worker.Backend;

/// <summary>One API key: a name (for logs, metrics and the rate limit) and the SHA-256 of the key.</summary>
internal sealed class ApiKeyOptions
{
    /// <summary>Who holds the key, e.g. <c>billing</c>: 1-64 characters of [A-Za-z0-9_-].</summary>
    public string Name { get; set; } = "";

    /// <summary>
    /// SHA-256 of the key's UTF-8 bytes, 64 hex digits (<c>printf %s "$KEY" | sha256sum</c>). Only the hash is
    /// configured, so a leaked configuration does not leak the key.
    /// </summary>
    public string Sha256 { get; set; } = "";
}

/// <summary>The backend API (section <c>Bridge:Api</c>). See docs/protocol.md §13 and docs/security.md.</summary>
internal sealed class ApiOptions
{
    public const string Section = "Bridge:Api";

    /// <summary>Shortest key the API accepts: keys are random, 32 bytes or more (256 bits), so a hash alone protects them.</summary>
    public const int MinKeyLength = 32;

    /// <summary>Longest key read from a request.</summary>
    public const int MaxKeyLength = 256;

    /// <summary>Serves the API over HTTP (<c>POST /api/backend/{op}</c>) and NATS (<c>{NatsPrefix}.api.{op}</c>).</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>API keys; several at once allow rotation without downtime.</summary>
    public List<ApiKeyOptions> Keys { get; set; } = [];

    /// <summary>Requests per second per caller (API key, admin token subject, or NATS), sustained.</summary>
    public int RequestsPerSecond { get; set; } = 100;

    /// <summary>
    /// Burst per caller (token bucket size). A broadcast takes one token per room, so this is at least
    /// <see cref="MaxBroadcastRooms"/>.
    /// </summary>
    public int Burst { get; set; } = 200;

    /// <summary>Largest request body in bytes (HTTP; over NATS the server's max_payload also applies).</summary>
    public int MaxRequestBytes { get; set; } = 1 << 20;

    /// <summary>Most rooms in one <c>broadcast</c>.</summary>
    public int MaxBroadcastRooms { get; set; } = 100;

    /// <summary>Most messages in one <c>history</c> page (the request's <c>limit</c>, default 100, is at most this).</summary>
    public int MaxHistoryPage { get; set; } = 1000;

    /// <summary>Most bytes of envelopes in one <c>history</c> page (at least one message is always returned over HTTP).</summary>
    public int MaxHistoryPageBytes { get; set; } = 4 << 20;

    /// <summary>Most rooms one <c>rooms</c> answer lists (the request's <c>limit</c> is at most this).</summary>
    public int MaxRoomsListed { get; set; } = 10_000;

    /// <summary>A ban's lifetime when the request gives none: set it to at least the longest token lifetime you issue.</summary>
    public TimeSpan DefaultBanTtl { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Longest ban a request may ask for.</summary>
    public TimeSpan MaxBanTtl { get; set; } = TimeSpan.FromDays(365);

    /// <summary>NATS key-value bucket of bans (file storage: bans survive a NATS restart).</summary>
    public string BansBucket { get; set; } = "bridge_bans";

    /// <summary>NATS key-value bucket in which each running worker announces itself (for cluster-wide answers).</summary>
    public string WorkersBucket { get; set; } = "bridge_workers";

    /// <summary>A worker's entry in <see cref="WorkersBucket"/> expires this long after its last renewal (every third of it).</summary>
    public TimeSpan WorkerTtl { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>
    /// Longest wait for the workers' answers to a cluster-wide request (<c>rooms</c>, <c>info</c>, <c>disconnect</c>,
    /// <c>ban</c>). The wait ends earlier once every worker in <see cref="WorkersBucket"/> has answered.
    /// </summary>
    public TimeSpan ScatterTimeout { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>Serves the operations over NATS request-reply too.</summary>
    public bool NatsEnabled { get; set; } = true;

    /// <summary>
    /// First token of the API's NATS subjects: backends request <c>{NatsPrefix}.api.{op}</c> (one worker of the queue
    /// group answers); workers ask each other on <c>{NatsPrefix}.worker.{op}</c>.
    /// </summary>
    public string NatsPrefix { get; set; } = "bridge";

    public string NatsApiSubject(string op) => $"{NatsPrefix}.api.{op}";

    public string NatsWorkerSubject(string op) => $"{NatsPrefix}.worker.{op}";
}

internal sealed class ApiOptionsValidator : IValidateOptions<ApiOptions>
{
    public ValidateOptionsResult Validate(string? name, ApiOptions o)
    {
        var failures = new List<string>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var key in o.Keys)
        {
            if (!IsToken(key.Name, 64))
            {
                failures.Add($"Bridge:Api:Keys: name '{key.Name}' must be 1-64 characters of [A-Za-z0-9_-].");
            }
            else if (!names.Add(key.Name))
            {
                failures.Add($"Bridge:Api:Keys: name '{key.Name}' is used twice.");
            }

            if (key.Sha256.Length != 64 || !key.Sha256.All(char.IsAsciiHexDigit))
            {
                failures.Add($"Bridge:Api:Keys: '{key.Name}' needs Sha256, the SHA-256 of the key as 64 hex digits (printf %s \"$KEY\" | sha256sum).");
            }
        }

        if (o.RequestsPerSecond < 1 || o.MaxBroadcastRooms < 1 || o.Burst < o.MaxBroadcastRooms)
        {
            failures.Add("Bridge:Api:RequestsPerSecond and MaxBroadcastRooms must be at least 1, and Burst at least MaxBroadcastRooms (a broadcast takes one token per room).");
        }

        if (o.MaxRequestBytes is < 1024 or > 16 << 20 || o.MaxHistoryPageBytes is < 1024 or > 64 << 20)
        {
            failures.Add("Bridge:Api:MaxRequestBytes must be 1 KiB-16 MiB and MaxHistoryPageBytes 1 KiB-64 MiB.");
        }

        if (o.MaxHistoryPage is < 1 or > 10_000 || o.MaxRoomsListed is < 1 or > 100_000 || o.MaxBroadcastRooms > 10_000)
        {
            failures.Add("Bridge:Api:MaxHistoryPage must be 1-10000, MaxRoomsListed 1-100000 and MaxBroadcastRooms at most 10000.");
        }

        if (o.DefaultBanTtl < TimeSpan.FromSeconds(1) || o.MaxBanTtl < o.DefaultBanTtl)
        {
            failures.Add("Bridge:Api:DefaultBanTtl must be at least 1 s and MaxBanTtl at least DefaultBanTtl.");
        }

        if (o.WorkerTtl < TimeSpan.FromSeconds(3) || o.ScatterTimeout < TimeSpan.FromMilliseconds(50) || o.ScatterTimeout > TimeSpan.FromMinutes(1))
        {
            failures.Add("Bridge:Api:WorkerTtl must be at least 3 s and ScatterTimeout 50 ms-1 min.");
        }

        if (!IsToken(o.BansBucket, 64) || !IsToken(o.WorkersBucket, 64))
        {
            failures.Add("Bridge:Api:BansBucket and WorkersBucket must be bucket names of [A-Za-z0-9_-].");
        }

        if (!Contracts.RoomName.IsValid(o.NatsPrefix))
        {
            failures.Add("Bridge:Api:NatsPrefix must be dot-separated [A-Za-z0-9_-] tokens (a subject prefix without wildcards).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    private static bool IsToken(string? value, int max) =>
        !string.IsNullOrEmpty(value) && value.Length <= max && value.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-');
}
