using System.Buffers.Text;
using System.Collections.Concurrent;
using System.Text;
using System.Text.Json;
using Bridge.Contracts;
using Bridge.Worker.Connections;
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
/// and replayed like every room message. A join or leave in a presence room costs one key write (a last leave
/// none), and a key listing when it is the user's first connection on this worker or their grace ends.
/// <para>
/// The <c>offline</c> waits <see cref="PresenceOptions.OfflineGrace"/>: a user whose last connection left stays
/// (key kept and renewed, one connection) until the grace passes, and a connection of theirs back in the room
/// on this worker within it takes the slot back without a new <c>online</c>. Back on another worker, that worker
/// sees this one's key and announces nothing either; when the grace here ends, the key goes and the other
/// worker's key keeps the <c>offline</c> from being stored. So consecutive long-polls (each a join and a leave,
/// on any worker) and quick reconnects do not flap.
/// </para>
/// </summary>
internal sealed partial class PresenceTracker(
    NatsContext nats,
    RoomPublisher publisher,
    IOptions<PresenceOptions> options,
    IOptions<NatsOptions> natsOptions,
    IOptions<WorkerOptions> worker,
    IOptions<ShutdownOptions> shutdown,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ILogger<PresenceTracker> logger) : BackgroundService, IRoomObserver
{
    public const string Online = "online";
    public const string Offline = "offline";

    private readonly RoomGrant _rooms = new([.. options.Value.Rooms.Select(p => RoomPattern.TryParse(p, out var r) ? r! : throw new InvalidOperationException(p))]);
    private readonly ConcurrentDictionary<(string Room, string User), Slot> _slots = new();

    // The slots whose user has no connection left here and waits out the grace: a subset of _slots, so as bounded as
    // they are, and what the sweep scans (not every slot).
    private readonly ConcurrentDictionary<(string Room, string User), Slot> _leaving = new();
    private readonly string _workerKey = Encode(worker.Value.Id);
    private INatsKVStore? _store;

    /// <summary>How long past <see cref="ShutdownOptions.ReconnectSpread"/> a client gets to be back on another worker.</summary>
    private static readonly TimeSpan ReconnectMargin = TimeSpan.FromSeconds(1);

    // When the shutdown began (ApplicationStopping, when the drain tells the clients to reconnect): a timestamp.
    private long _stoppingAt;

    public bool IsEnabled(string room) => _rooms.Patterns.Count > 0 && _rooms.Allows(room);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.Rooms.Length > 0)
        {
            lifetime.ApplicationStopping.Register(() => _stoppingAt = time.GetTimestamp());
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

    /// <inheritdoc />
    public bool Observes(string room) => IsEnabled(room);

    /// <summary>A connection of <paramref name="user"/> is in <paramref name="room"/> on this worker.</summary>
    public async ValueTask JoinedAsync(string room, string user)
    {
        if (_store is null || !IsEnabled(room))
        {
            return;
        }

        var slot = await TakeSlotAsync(room, user);
        try
        {
            // Back within the grace: still online for everyone, so nothing to announce and the first since stays.
            var first = slot.Count == 0 && !slot.Leaving;
            slot.Count++;
            if (slot.Leaving)
            {
                slot.OfflineDue = Slot.NotLeaving;
                _leaving.TryRemove(new KeyValuePair<(string, string), Slot>((room, user), slot));
            }

            if (first)
            {
                slot.Since = time.GetUtcNow().ToUnixTimeMilliseconds();
            }

            await PutAsync(room, user, slot);
            if (first && !await OnOtherWorkersAsync(room, user, CancellationToken.None))
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
            if (slot.Gone || slot.Count == 0)
            {
                return;
            }

            slot.Count--;
            if (slot.Count == 0)
            {
                // The last one here: the offline waits out the grace (the sweep finishes it), and the key stays as it is
                // meanwhile (no write: a long-poll costs one key write, at its join).
                slot.OfflineDue = time.GetUtcNow().ToUnixTimeMilliseconds() + (long)options.Value.OfflineGrace.TotalMilliseconds;
                _leaving[(room, user)] = slot;
                return;
            }

            await PutAsync(room, user, slot);
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
        foreach (var key in await KeyValueBuckets.KeysAsync(_store, Encode(room) + ".>", cancellationToken))
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

    /// <summary>Renews this worker's entries, and takes offline the users whose grace has passed.</summary>
    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        _store is null ? Task.CompletedTask : Task.WhenAll(RenewAsync(stoppingToken), SweepAsync(stoppingToken));

    /// <summary>
    /// On shutdown, after the connections have drained (their leaves are in), the users still in their grace go
    /// offline unless they are on another worker. The drain told each client to reconnect within
    /// <see cref="ShutdownOptions.ReconnectSpread"/>, so this first waits that long (plus <see cref="ReconnectMargin"/>)
    /// from the shutdown's start: a user back elsewhere by then is found there, and neither worker announces anything.
    /// Bounded by the host's shutdown timeout (<see cref="ShutdownOptions.DrainTimeout"/>): what is not done by then
    /// gets no <c>offline</c> (the keys expire within Ttl).
    /// </summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_store is null)
        {
            return;
        }

        try
        {
            var wait = shutdown.Value.ReconnectSpread + ReconnectMargin - time.GetElapsedTime(_stoppingAt);
            if (!_leaving.IsEmpty && wait > TimeSpan.Zero)
            {
                // Said once, before the pause: a stop that takes seconds after a presence room was used is this wait.
                var users = LeavingUsers(); // once, at shutdown
                LogWaitingForReconnects((long)wait.TotalMilliseconds, users, (long)shutdown.Value.ReconnectSpread.TotalMilliseconds);

                await Task.Delay(wait, time, cancellationToken);
            }

            await FinishLeavingAsync(long.MaxValue, retry: false, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            var users = LeavingUsers(); // once, at shutdown
            LogFlushCutShort(users);
        }
    }

    /// <summary>The heartbeat that keeps this worker's entries from expiring.</summary>
    private async Task RenewAsync(CancellationToken stoppingToken)
    {
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
                        // A slot past its grace is being finished (or retried): its key is deleted, not written back.
                        if (!slot.Gone && slot.OfflineDue > time.GetUtcNow().ToUnixTimeMilliseconds())
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

    /// <summary>
    /// Every OfflineGrace / 4 (at most 1 s: how late past its grace an offline may come), the offline of each user
    /// whose grace has passed.
    /// </summary>
    private async Task SweepAsync(CancellationToken stoppingToken)
    {
        var grace = options.Value.OfflineGrace;
        using var timer = new PeriodicTimer(TimeSpan.FromTicks(Math.Min(grace.Ticks / 4, TimeSpan.TicksPerSecond)), time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                await FinishLeavingAsync(time.GetUtcNow().ToUnixTimeMilliseconds(), retry: true, stoppingToken);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>
    /// Takes offline every user here whose grace ends by <paramref name="now"/> (unix ms). The slot stays (a joiner
    /// waits on its gate) until the key is deleted and the <c>offline</c> stored, so a join at the grace's end comes
    /// after them. A failure keeps the slot leaving: with <paramref name="retry"/> the next sweep tries again, until
    /// the key would have expired anyway (Ttl after the grace's end); without (shutdown) it is given up at once.
    /// </summary>
    private async Task FinishLeavingAsync(long now, bool retry, CancellationToken cancellationToken)
    {
        foreach (var ((room, user), slot) in _leaving)
        {
            if (slot.OfflineDue > now)
            {
                continue;
            }

            await slot.Gate.WaitAsync(cancellationToken);
            try
            {
                // Checked again under the gate: a connection may have come back since.
                if (slot.Gone || !slot.Leaving || slot.OfflineDue > now)
                {
                    continue;
                }

                try
                {
                    await _store!.TryDeleteAsync(Key(room, user), cancellationToken: cancellationToken);
                    if (!await OnOtherWorkersAsync(room, user, cancellationToken))
                    {
                        await AnnounceAsync(room, user, Offline);
                    }
                }
                catch (Exception ex) when (ex is NatsException or TimeoutException or InvalidOperationException)
                {
                    // One user's failure does not stop the others.
                    LogPresenceFailed(ex, room);
                    if (retry && time.GetUtcNow().ToUnixTimeMilliseconds() < slot.OfflineDue + (long)options.Value.Ttl.TotalMilliseconds)
                    {
                        continue;
                    }

                    LogOfflineLost(room);
                }

                slot.Gone = true;
                _leaving.TryRemove(new KeyValuePair<(string, string), Slot>((room, user), slot));
                _slots.TryRemove(new KeyValuePair<(string, string), Slot>((room, user), slot));
            }
            finally
            {
                slot.Gate.Release();
            }
        }
    }

    /// <summary>The user's slot in the room, its gate taken; a slot finished while this waited is replaced.</summary>
    private async ValueTask<Slot> TakeSlotAsync(string room, string user)
    {
        while (true)
        {
            var slot = _slots.GetOrAdd((room, user), static _ => new Slot());
            await slot.Gate.WaitAsync();
            if (!slot.Gone)
            {
                return slot;
            }

            slot.Gate.Release();
        }
    }

    private async ValueTask PutAsync(string room, string user, Slot slot)
    {
        // A user in their grace counts the one connection they are expected back on (a long-poller's next poll).
        var value = new Value(user, slot.Leaving ? 1 : slot.Count, slot.Since, time.GetUtcNow().ToUnixTimeMilliseconds());
        await _store!.PutAsync(Key(room, user), JsonSerializer.SerializeToUtf8Bytes(value));
    }

    /// <summary>True when another worker holds a live entry of the user in the room.</summary>
    /// <exception cref="TimeoutException">No answer within the connection's request timeout (NATS reconnecting).</exception>
    private async ValueTask<bool> OnOtherWorkersAsync(string room, string user, CancellationToken cancellationToken)
    {
        var own = Key(room, user);
        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(nats.Connection.Opts.RequestTimeout);
        try
        {
            foreach (var key in await KeyValueBuckets.KeysAsync(_store!, $"{Encode(room)}.{Encode(user)}.*", bounded.Token))
            {
                // A listed key may be a delete marker (that worker's user went offline there): only a live entry counts.
                if (key != own && (await _store!.TryGetEntryAsync<byte[]>(key, cancellationToken: bounded.Token)).Success)
                {
                    return true;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"Listing the presence keys of room {room} took longer than {nats.Connection.Opts.RequestTimeout}.");
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

        public const long NotLeaving = long.MaxValue;

        private long _offlineDue = NotLeaving;

        public int Count { get; set; }

        public long Since { get; set; }

        /// <summary>When (unix ms) its user goes offline, no connection having come back; <see cref="NotLeaving"/> while one is here.</summary>
        public long OfflineDue
        {
            // Read by the sweep before it takes the gate (to skip slots not yet due), written under the gate.
            get => Volatile.Read(ref _offlineDue);
            set => Volatile.Write(ref _offlineDue, value);
        }

        public bool Leaving => OfflineDue != NotLeaving;

        /// <summary>Finished (offline done, removed): a join that waited on its gate takes a new slot.</summary>
        public bool Gone { get; set; }
    }

    private sealed record Value(string User, int Connections, long Since, long Renewed);

    [LoggerMessage(EventId = 5001, Level = LogLevel.Warning, Message = "Presence of room {Room} could not be updated")]
    private partial void LogPresenceFailed(Exception exception, string room);

    // The users held in their offline grace: one user leaving several rooms counts once.
    private int LeavingUsers() => _leaving.Keys.Select(k => k.User).Distinct(StringComparer.Ordinal).Count();

    [LoggerMessage(EventId = 5003, Level = LogLevel.Warning, Message = "Presence of room {Room}: a user's offline could not be stored and is given up (their key expires within Ttl)")]
    private partial void LogOfflineLost(string room);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Warning, Message = "Shutdown: {Users} users in their offline grace got no offline (out of shutdown time; their keys expire within Ttl)")]
    private partial void LogFlushCutShort(int users);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Information, Message = "Shutdown: waiting {WaitMs} ms before storing the offline of {Users} users in their offline grace (clients were told to reconnect within ReconnectSpread, {ReconnectSpreadMs} ms, plus 1 s; a user back on another worker stays online)")]
    private partial void LogWaitingForReconnects(long waitMs, int users, long reconnectSpreadMs);
}
