using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Bridge.Contracts;
using Bridge.Worker.Nats;
using Bridge.Worker.Rooms;
using Bridge.Worker.Security;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.KeyValueStore;

namespace Bridge.Worker.Presence;

/// <summary>
/// Presence per room, visible from every worker, kept in a NATS key-value bucket: one key per room, user and
/// worker (<c>{room}.{user}.{worker}</c>, each part base64url), value <c>{user, connections, since}</c>, renewed
/// every third of <see cref="PresenceOptions.Ttl"/>; the bucket's max age expires the keys of a worker that died.
/// A user's first connection in a room (on any worker) publishes <c>presence.update {user, status: online}</c>
/// into the room itself, and their last one <c>offline</c>: once per user, not per tab, and delivered, ordered
/// and replayed like every room message. A join or leave in a presence room costs one key write, and a key
/// listing when it is the user's first or last connection on this worker.
/// </summary>
internal sealed partial class PresenceTracker(
    NatsContext nats,
    RoomPublisher publisher,
    IOptions<PresenceOptions> options,
    IOptions<NatsOptions> natsOptions,
    IOptions<WorkerOptions> worker,
    TimeProvider time,
    ILogger<PresenceTracker> logger) : BackgroundService, IRoomObserver
{
    public const string Online = "online";
    public const string Offline = "offline";

    private readonly RoomGrant _rooms = new([.. options.Value.Rooms.Select(p => RoomPattern.TryParse(p, out var r) ? r! : throw new InvalidOperationException(p))]);
    private readonly ConcurrentDictionary<(string Room, string User), Slot> _slots = new();
    private readonly string _workerKey = Encode(worker.Value.Id);
    private INatsKVStore? _store;

    public bool IsEnabled(string room) => _rooms.Patterns.Count > 0 && _rooms.Allows(room);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.Rooms.Length > 0)
        {
            _store = await KeyValueBuckets.CreateOrUpdateAsync(
                nats,
                new NatsKVConfig(o.Bucket)
                {
                    Description = "Bridge: presence per room, user and worker",
                    History = 1,
                    MaxAge = o.Ttl,
                    Storage = NatsKVStorageType.Memory,
                    NumberOfReplicas = natsOptions.Value.Replicas,
                },
                natsOptions.Value.StartupTimeout,
                time,
                cancellationToken);
        }

        await base.StartAsync(cancellationToken);
    }

    /// <summary>A connection of <paramref name="user"/> is in <paramref name="room"/> on this worker.</summary>
    public async ValueTask JoinedAsync(string room, string user)
    {
        if (_store is null || !IsEnabled(room))
        {
            return;
        }

        var slot = _slots.GetOrAdd((room, user), static _ => new Slot());
        await slot.Gate.WaitAsync();
        try
        {
            slot.Count++;
            if (slot.Count == 1)
            {
                slot.Since = time.GetUtcNow().ToUnixTimeMilliseconds();
            }

            await PutAsync(room, user, slot);
            if (slot.Count == 1 && !await OnOtherWorkersAsync(room, user))
            {
                await AnnounceAsync(room, user, Online);
            }
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException or InvalidOperationException)
        {
            LogPresenceFailed(ex, room);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>A connection of <paramref name="user"/> left <paramref name="room"/> on this worker.</summary>
    public async ValueTask LeftAsync(string room, string user)
    {
        if (_store is null || !IsEnabled(room) || !_slots.TryGetValue((room, user), out var slot))
        {
            return;
        }

        await slot.Gate.WaitAsync();
        try
        {
            slot.Count = Math.Max(0, slot.Count - 1);
            if (slot.Count > 0)
            {
                await PutAsync(room, user, slot);
                return;
            }

            _slots.TryRemove(new KeyValuePair<(string, string), Slot>((room, user), slot));
            await _store.TryDeleteAsync(Key(room, user));
            if (!await OnOtherWorkersAsync(room, user))
            {
                await AnnounceAsync(room, user, Offline);
            }
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException or InvalidOperationException)
        {
            LogPresenceFailed(ex, room);
        }
        finally
        {
            slot.Gate.Release();
        }
    }

    /// <summary>Everyone in the room on any worker, one entry per user (connections summed, earliest since).</summary>
    public async Task<IReadOnlyList<PresenceMember>> QueryAsync(string room, CancellationToken cancellationToken)
    {
        if (_store is null)
        {
            return [];
        }

        var members = new Dictionary<string, PresenceMember>(StringComparer.Ordinal);
        var now = time.GetUtcNow().ToUnixTimeMilliseconds();
        await foreach (var key in _store.GetKeysAsync([Encode(room) + ".>"], cancellationToken: cancellationToken))
        {
            var entry = await _store.TryGetEntryAsync<byte[]>(key, cancellationToken: cancellationToken);
            if (!entry.Success || entry.Value.Value is not { Length: > 0 } bytes || JsonSerializer.Deserialize<Value>(bytes) is not { } value ||
                value.Renewed + (long)options.Value.Ttl.TotalMilliseconds < now)
            {
                continue;
            }

            members[value.User] = members.TryGetValue(value.User, out var known)
                ? known with { Connections = known.Connections + value.Connections, Since = Math.Min(known.Since, value.Since) }
                : new PresenceMember(value.User, value.Connections, value.Since);
            if (members.Count >= options.Value.MaxMembers)
            {
                break;
            }
        }

        return [.. members.Values.OrderBy(m => m.Since)];
    }

    /// <summary>Renews this worker's entries (the heartbeat that keeps them from expiring).</summary>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_store is null)
        {
            return;
        }

        using var timer = new PeriodicTimer(options.Value.Ttl / 3, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                foreach (var ((room, user), slot) in _slots)
                {
                    await slot.Gate.WaitAsync(stoppingToken);
                    try
                    {
                        if (slot.Count > 0)
                        {
                            await PutAsync(room, user, slot);
                        }
                    }
                    catch (Exception ex) when (ex is NatsException or TimeoutException)
                    {
                        LogPresenceFailed(ex, room);
                    }
                    finally
                    {
                        slot.Gate.Release();
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private async ValueTask PutAsync(string room, string user, Slot slot)
    {
        var value = new Value(user, slot.Count, slot.Since, time.GetUtcNow().ToUnixTimeMilliseconds());
        await _store!.PutAsync(Key(room, user), JsonSerializer.SerializeToUtf8Bytes(value));
    }

    /// <summary>True when another worker holds a live entry of the user in the room.</summary>
    private async ValueTask<bool> OnOtherWorkersAsync(string room, string user)
    {
        var own = Key(room, user);
        await foreach (var key in _store!.GetKeysAsync([$"{Encode(room)}.{Encode(user)}.*"]))
        {
            if (key != own)
            {
                return true;
            }
        }

        return false;
    }

    private async ValueTask AnnounceAsync(string room, string user, string status)
    {
        var payload = JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["user"] = user, ["status"] = status });
        await publisher.PublishAsync(room, MessageTypes.PresenceUpdate, user, id: null, PayloadKind.Json, payload, CancellationToken.None);
    }

    private string Key(string room, string user) => $"{Encode(room)}.{Encode(user)}.{_workerKey}";

    private static string Encode(string text) => Base64Url.EncodeToString(Encoding.UTF8.GetBytes(text));

    private sealed class Slot
    {
        public SemaphoreSlim Gate { get; } = new(1, 1);

        public int Count { get; set; }

        public long Since { get; set; }
    }

    private sealed record Value(string User, int Connections, long Since, long Renewed);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "Presence of room {Room} could not be updated")]
    private partial void LogPresenceFailed(Exception exception, string room);
}
