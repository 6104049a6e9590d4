using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Bridge.Worker.Nats;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.KeyValueStore;

namespace Bridge.Worker.Limits;

/// <summary>
/// Counts each user's connections across all workers, for <see cref="LimitOptions.MaxConnectionsPerUser"/>.
/// One key per user in a NATS key-value bucket holds every worker's count with a lease expiry:
/// <c>{"worker-id": {"n": 2, "exp": unix-ms}}</c>. A worker changes only its own entry, with compare-and-set on
/// the key's revision, and renews its entries every third of the lease; the entries of a worker that died stop
/// counting when their lease runs out. Connecting costs one read and one write (about two round trips).
/// When NATS cannot answer, the check fails open (the connection is allowed, the per-worker and per-IP limits
/// still apply) and a warning is logged: an outage of the counter must not lock every user out.
/// </summary>
internal sealed partial class UserConnectionCounter(
    NatsContext nats,
    IOptions<LimitOptions> limits,
    IOptions<NatsOptions> natsOptions,
    IOptions<WorkerOptions> worker,
    TimeProvider time,
    ILogger<UserConnectionCounter> logger) : BackgroundService
{
    private const int MaxAttempts = 8;

    private readonly ConcurrentDictionary<string, Slot> _slots = new(StringComparer.Ordinal);
    private readonly string _me = worker.Value.Id;
    private INatsKVStore? _store;

    public bool Enabled => limits.Value.MaxConnectionsPerUser > 0;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (Enabled)
        {
            var o = limits.Value;
            _store = await KeyValueBuckets.CreateOrUpdateAsync(
                nats,
                new NatsKVConfig(o.ConnectionsBucket)
                {
                    Description = "Bridge: connections per user per worker",
                    History = 1,
                    // A key nobody renews (every worker of the user died) disappears on its own.
                    MaxAge = o.UserCountLease * 2,
                    Storage = NatsKVStorageType.Memory,
                    NumberOfReplicas = natsOptions.Value.Replicas,
                },
                natsOptions.Value.StartupTimeout,
                time,
                cancellationToken);
        }

        await base.StartAsync(cancellationToken);
    }

    /// <summary>Counts one more connection of <paramref name="user"/>; false when that would exceed the limit.</summary>
    public async ValueTask<bool> TryAcquireAsync(string user, CancellationToken cancellationToken)
    {
        if (_store is null)
        {
            return true;
        }

        var max = limits.Value.MaxConnectionsPerUser;
        while (true)
        {
            var slot = _slots.GetOrAdd(user, static _ => new Slot());
            await slot.Gate.WaitAsync(cancellationToken);
            try
            {
                if (slot.Removed)
                {
                    continue; // swept between GetOrAdd and the gate: take the fresh slot
                }

                try
                {
                    var allowed = await UpdateOwnAsync(user, slot.Count + 1, others => others + slot.Count + 1 <= max, cancellationToken);
                    if (allowed)
                    {
                        slot.Count++;
                    }

                    return allowed;
                }
                catch (Exception ex) when (ex is NatsException or TimeoutException or InvalidOperationException && !cancellationToken.IsCancellationRequested)
                {
                    LogCounterUnavailable(ex);
                    slot.Count++;
                    return true;
                }
            }
            finally
            {
                slot.Gate.Release();
            }
        }
    }

    /// <summary>Counts one connection of <paramref name="user"/> less. Never throws.</summary>
    public async ValueTask ReleaseAsync(string user)
    {
        if (_store is null || !_slots.TryGetValue(user, out var slot))
        {
            return;
        }

        await slot.Gate.WaitAsync(CancellationToken.None);
        try
        {
            slot.Count = Math.Max(0, slot.Count - 1);
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await UpdateOwnAsync(user, slot.Count, null, timeout.Token);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException or InvalidOperationException or OperationCanceledException)
        {
            // The entry's lease runs out by itself.
            LogCounterUnavailable(ex);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_store is null)
        {
            return;
        }

        using var timer = new PeriodicTimer(limits.Value.UserCountLease / 3, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await RenewAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Renews this worker's entries, and forgets users without connections here.</summary>
    private async Task RenewAsync(CancellationToken cancellationToken)
    {
        foreach (var (user, slot) in _slots)
        {
            await slot.Gate.WaitAsync(cancellationToken);
            try
            {
                if (slot.Count == 0)
                {
                    slot.Removed = true;
                    _slots.TryRemove(new KeyValuePair<string, Slot>(user, slot));
                    continue;
                }

                await UpdateOwnAsync(user, slot.Count, null, cancellationToken);
            }
            catch (Exception ex) when (ex is NatsException or TimeoutException or InvalidOperationException)
            {
                LogCounterUnavailable(ex);
            }
            finally
            {
                slot.Gate.Release();
            }
        }
    }

    /// <summary>
    /// Sets this worker's count for the user with compare-and-set. When <paramref name="admit"/> is given, it is
    /// asked with the live count of the other workers first, and nothing is written when it says no.
    /// </summary>
    private async ValueTask<bool> UpdateOwnAsync(string user, int count, Func<int, bool>? admit, CancellationToken cancellationToken)
    {
        var key = Key(user);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        for (var attempt = 0; attempt < MaxAttempts; attempt++)
        {
            var read = await _store!.TryGetEntryAsync<byte[]>(key, cancellationToken: cancellationToken);
            var revision = read.Success ? read.Value.Revision : 0;
            var entries = read.Success && read.Value.Value is { Length: > 0 } bytes
                ? JsonSerializer.Deserialize<Dictionary<string, Entry>>(bytes) ?? []
                : [];

            // Drop expired entries (dead workers) while we are here.
            foreach (var stale in entries.Where(e => e.Value.Exp <= now).Select(e => e.Key).ToList())
            {
                entries.Remove(stale);
            }

            var others = entries.Where(e => e.Key != _me).Sum(e => e.Value.N);
            if (admit is not null && !admit(others))
            {
                return false;
            }

            if (count > 0)
            {
                entries[_me] = new Entry(count, now + (long)limits.Value.UserCountLease.TotalMilliseconds);
            }
            else
            {
                entries.Remove(_me);
            }

            var value = JsonSerializer.SerializeToUtf8Bytes(entries);
            var written = revision == 0
                ? (await _store.TryCreateAsync(key, value, cancellationToken: cancellationToken)).Success
                : (await _store.TryUpdateAsync(key, value, revision, cancellationToken: cancellationToken)).Success;
            if (written)
            {
                return true;
            }
        }

        throw new InvalidOperationException($"the connection count of a user changed {MaxAttempts} times while being updated");
    }

    private static string Key(string user) => "u." + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(user));

    private sealed class Slot
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public int Count { get; set; }

        public bool Removed { get; set; }
    }

    private sealed record Entry(int N, long Exp);

    [LoggerMessage(EventId = 1401, Level = LogLevel.Warning, Message = "The per-user connection count is unavailable; allowing the connection")]
    private partial void LogCounterUnavailable(Exception exception);
}
