using System.Collections.Immutable;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.KeyValueStore;

namespace Bridge.Worker.Nats;

/// <summary>
/// The entries of a NATS key-value bucket, kept in memory and current through a watch: <see cref="WaitLoadedAsync"/>
/// returns once every entry that existed when the watch started is in, and each later put, delete, purge or TTL
/// expiry replaces the snapshot. Readers take <see cref="Current"/> (an immutable snapshot) without a lock; writers
/// (the watch, and <see cref="Apply"/>) take turns, and <see cref="Rebuilt"/> runs in that turn, so an index derived
/// from the snapshot is never overwritten by an older one. Values that do not parse are left out (another worker's
/// version may write them).
/// </summary>
internal sealed class WatchedBucket<T>(Func<ReadOnlyMemory<byte>, T?> parse, TimeProvider time)
    where T : class
{
    // After a failed watch (NATS unreachable), the next attempt waits this long.
    private static readonly TimeSpan RetryDelay = TimeSpan.FromSeconds(1);

    private readonly TaskCompletionSource _loaded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private INatsKVStore? _store;
    private volatile ImmutableDictionary<string, T> _current = ImmutableDictionary<string, T>.Empty.WithComparers(StringComparer.Ordinal);

    /// <summary>Every live entry, by key.</summary>
    public ImmutableDictionary<string, T> Current => _current;

    /// <summary>Called after each change that arrives once loaded: the key, and its value (null when removed).</summary>
    public Action<string, T?>? Changed { get; set; }

    /// <summary>The bucket, once <see cref="OpenAsync"/> has created (or updated) it.</summary>
    public INatsKVStore Store => _store ?? throw new InvalidOperationException("the bucket is not open");

    /// <summary>Creates or updates the bucket (with the stream's replicas), retrying while a fresh cluster settles.</summary>
    public async Task OpenAsync(NatsContext nats, NatsKVConfig config, NatsOptions natsOptions, CancellationToken cancellationToken) =>
        _store = await KeyValueBuckets.CreateOrUpdateAsync(
            nats, config with { NumberOfReplicas = natsOptions.Replicas }, natsOptions.StartupTimeout, time, cancellationToken);

    /// <summary>Waits (at most <paramref name="timeout"/>) until the entries present at the start are read.</summary>
    public Task WaitLoadedAsync(TimeSpan timeout, CancellationToken cancellationToken) => _loaded.Task.WaitAsync(timeout, time, cancellationToken);

    /// <summary>Called with each new snapshot, one call at a time: derive indexes here.</summary>
    public Action<ImmutableDictionary<string, T>>? Rebuilt { get; set; }

    /// <summary>Puts an entry into the snapshot (null removes it) ahead of the watch, which brings the same change later.</summary>
    public void Apply(string key, T? value)
    {
        lock (_gate)
        {
            Set(value is null ? _current.Remove(key) : _current.SetItem(key, value));
        }
    }

    private void Set(ImmutableDictionary<string, T> snapshot)
    {
        _current = snapshot;
        Rebuilt?.Invoke(snapshot);
    }

    /// <summary>
    /// Watches the bucket until <paramref name="cancellationToken"/> fires. A watch that fails is started again, and
    /// the snapshot is rebuilt from what it reads (so entries removed meanwhile do not linger).
    /// </summary>
    public async Task RunAsync(Action<Exception> onError, CancellationToken cancellationToken)
    {
        var store = Store;
        while (!cancellationToken.IsCancellationRequested)
        {
            var initial = ImmutableDictionary.CreateBuilder<string, T>(StringComparer.Ordinal);
            var initialDone = false;
            void Publish()
            {
                lock (_gate)
                {
                    Set(initial.ToImmutable());
                }

                initialDone = true;
                _loaded.TrySetResult();
            }

            try
            {
                var opts = new NatsKVWatchOpts
                {
                    OnNoData = _ =>
                    {
                        Publish();
                        return ValueTask.FromResult(false);
                    },
                };
                await foreach (var entry in store.WatchAsync<byte[]>(opts: opts, cancellationToken: cancellationToken))
                {
                    var value = entry.Operation == NatsKVOperation.Put && entry.Value is { Length: > 0 } bytes ? parse(bytes) : null;
                    if (!initialDone)
                    {
                        if (value is null)
                        {
                            initial.Remove(entry.Key);
                        }
                        else
                        {
                            initial[entry.Key] = value;
                        }

                        if (entry.Delta == 0)
                        {
                            Publish();
                        }

                        continue;
                    }

                    Apply(entry.Key, value);
                    Changed?.Invoke(entry.Key, value);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex) when (ex is NatsException or NatsJSException or TimeoutException or InvalidOperationException)
            {
                onError(ex);
                try
                {
                    await Task.Delay(RetryDelay, time, cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }
}
