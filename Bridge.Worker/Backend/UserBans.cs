using System.Buffers.Text;
using System.Collections.Immutable;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Bridge.Worker.Nats;
using Microsoft.Extensions.Options;
using NATS.Client.KeyValueStore;

namespace Bridge.Worker.Backend;

/// <summary>
/// A ban: every token of <see cref="User"/> issued before <see cref="BannedAt"/> is refused until
/// <see cref="ExpiresAt"/> (both unix ms). Tokens issued after the ban are accepted: a ban revokes what was handed
/// out, and the token issuer decides whether the user gets a new one.
/// </summary>
internal sealed record Ban(
    [property: JsonPropertyName("user")] string User,
    [property: JsonPropertyName("banned_at")] long BannedAt,
    [property: JsonPropertyName("expires_at")] long ExpiresAt,
    [property: JsonPropertyName("reason")] string? Reason)
{
    /// <summary>
    /// True when a token issued at <paramref name="issuedAt"/> predates the ban. <c>iat</c> has one-second
    /// resolution, so a token issued in the ban's own second counts as before it; a token without <c>iat</c> too.
    /// </summary>
    public bool Revokes(DateTimeOffset? issuedAt, long nowMs) =>
        nowMs < ExpiresAt && (issuedAt is not { } iat || iat.ToUnixTimeSeconds() <= BannedAt / 1000);
}

/// <summary>
/// The bans, kept in a NATS key-value bucket (file storage, one key per ban: <c>{user}.{banned_at}</c>, the user
/// base64url-encoded) so that every worker, and a worker started later, sees them. Each worker mirrors the bucket in
/// memory through a watch (<see cref="WatchedBucket{T}"/>, loaded before the worker serves), so a token check costs
/// a dictionary lookup. A ban is written with a per-key TTL (nats-server 2.11+): the server removes it at its expiry
/// and the watch drops it everywhere; <see cref="UnbanAsync"/> removes it at once. A ban that arrives through the
/// watch also closes the user's connections on this worker whose token predates it (<see cref="Banned"/>).
/// </summary>
internal sealed partial class UserBans(
    NatsContext nats,
    IOptions<ApiOptions> options,
    IOptions<NatsOptions> natsOptions,
    TimeProvider time,
    ILogger<UserBans> logger) : BackgroundService, Security.IRevokedTokens
{
    private readonly WatchedBucket<Ban> _bucket = new(Parse, time);
    private volatile ImmutableDictionary<string, ImmutableArray<Ban>> _byUser = ImmutableDictionary<string, ImmutableArray<Ban>>.Empty;
    private INatsKVStore? _store;

    /// <summary>Raised for each ban that arrives after start (from any worker, this one included).</summary>
    public event Action<Ban>? Banned;

    /// <summary>Bans in force now, over every user.</summary>
    public int Count => _bucket.Current.Count;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (!o.Enabled)
        {
            return;
        }

        await _bucket.OpenAsync(
            nats,
            new NatsKVConfig(o.BansBucket)
            {
                Description = "Bridge: banned users (tokens issued before the ban are refused)",
                History = 1,
                Storage = NatsKVStorageType.File,
                // Allows a TTL per key (each ban's own); the marker left when one expires tells the watchers.
                LimitMarkerTTL = TimeSpan.FromMinutes(5),
            },
            natsOptions.Value,
            cancellationToken);
        _store = _bucket.Store;
        _bucket.Rebuilt = Reindex;
        _bucket.Changed = (_, ban) =>
        {
            if (ban is not null)
            {
                Banned?.Invoke(ban);
            }
        };
        await base.StartAsync(cancellationToken);
        // A worker must not admit a banned user's old token because it has not read the bans yet.
        await _bucket.WaitLoadedAsync(natsOptions.Value.StartupTimeout, cancellationToken);
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _store is null ? Task.CompletedTask : _bucket.RunAsync(LogWatchFailed, stoppingToken);

    /// <summary>True when <paramref name="user"/> is banned and a token issued at <paramref name="issuedAt"/> predates the ban.</summary>
    public bool IsRevoked(string user, DateTimeOffset? issuedAt)
    {
        if (!_byUser.TryGetValue(user, out var bans))
        {
            return false;
        }

        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        foreach (var ban in bans)
        {
            if (ban.Revokes(issuedAt, now))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Stores a ban of <paramref name="user"/> from now for <paramref name="ttl"/>, and applies it on this worker at once.</summary>
    public async Task<Ban> BanAsync(string user, TimeSpan ttl, string? reason, CancellationToken cancellationToken)
    {
        var store = _store ?? throw new InvalidOperationException("the backend API is disabled");
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        var ban = new Ban(user, now, now + (long)ttl.TotalMilliseconds, reason);
        var key = $"{Encode(user)}.{now}";
        await store.CreateAsync(key, JsonSerializer.SerializeToUtf8Bytes(ban), ttl, cancellationToken: cancellationToken);
        _bucket.Apply(key, ban);
        return ban;
    }

    /// <summary>Removes every ban of <paramref name="user"/>; the number removed.</summary>
    public async Task<int> UnbanAsync(string user, CancellationToken cancellationToken)
    {
        var store = _store ?? throw new InvalidOperationException("the backend API is disabled");
        var prefix = Encode(user) + ".";
        var removed = 0;
        // One listing (KeyValueBuckets.KeysAsync, as presence): GetKeysAsync's consumer can end early while keys of the
        // listing are purged, here by this very loop.
        foreach (var key in await KeyValueBuckets.KeysAsync(store, prefix + "*", cancellationToken))
        {
            // A listed key may be the marker of a ban already removed or expired: only a ban in the bucket counts.
            var entry = await store.TryGetEntryAsync<byte[]>(key, cancellationToken: cancellationToken);
            if (!entry.Success)
            {
                // Only "no such ban" is skipped; any other failure (a 503 during a leader election) is the caller's
                // error, never a ban silently left in force with a success answer.
                if (entry.Error is NatsKVKeyNotFoundException or NatsKVKeyDeletedException)
                {
                    continue;
                }

                throw entry.Error;
            }

            await store.PurgeAsync(key, cancellationToken: cancellationToken);
            _bucket.Apply(key, null);
            removed++;
        }

        return removed;
    }

    /// <summary>A ban another worker stored, applied before the watch brings it (so the caller's answer means "in force everywhere").</summary>
    public void Apply(Ban ban) => _bucket.Apply($"{Encode(ban.User)}.{ban.BannedAt}", ban);

    /// <summary>Drops the user's bans from this worker's memory (another worker removed them from the bucket).</summary>
    public void Forget(string user)
    {
        var prefix = Encode(user) + ".";
        foreach (var key in _bucket.Current.Keys.Where(k => k.StartsWith(prefix, StringComparison.Ordinal)).ToList())
        {
            _bucket.Apply(key, null);
        }
    }

    private void Reindex(ImmutableDictionary<string, Ban> bans) =>
        _byUser = bans.Values.GroupBy(b => b.User, StringComparer.Ordinal)
            .ToImmutableDictionary(g => g.Key, g => g.ToImmutableArray(), StringComparer.Ordinal);

    private static Ban? Parse(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            return JsonSerializer.Deserialize<Ban>(bytes.Span) is { User.Length: > 0 } ban ? ban : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    private static string Encode(string text) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(text));

    [LoggerMessage(EventId = 6101, Level = LogLevel.Warning, Message = "Watching the bans bucket failed; retrying")]
    private partial void LogWatchFailed(Exception exception);
}
