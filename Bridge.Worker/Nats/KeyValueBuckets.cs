using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using NATS.Client.KeyValueStore;

namespace Bridge.Worker.Nats;

/// <summary>
/// Creates (or updates) a key-value bucket at start, retrying like <see cref="StreamSetup"/>: on a fresh JetStream
/// cluster, several workers starting at once can see the bucket's stream being created, or no answer while the
/// meta leader settles (found by the local cluster's failure tests).
/// </summary>
internal static class KeyValueBuckets
{
    public static async Task<INatsKVStore> CreateOrUpdateAsync(NatsContext nats, NatsKVConfig config, TimeSpan startupTimeout, TimeProvider time, CancellationToken cancellationToken)
    {
        using var deadline = new CancellationTokenSource(startupTimeout, time);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var kv = new NatsKVContext(nats.JetStream);
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                return await kv.CreateOrUpdateStoreAsync(config, timeout.Token);
            }
            catch (Exception ex) when (!timeout.IsCancellationRequested && ex is NatsException or NatsJSApiException or TimeoutException)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 100 * attempt)), time, timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new InvalidOperationException(
                    $"the NATS key-value bucket {config.Bucket} could not be created within {startupTimeout} (Bridge:Nats:StartupTimeout)");
            }
        }
    }

    /// <summary>
    /// The keys of <paramref name="store"/> matching <paramref name="filter"/> (a key pattern, <c>*</c> and <c>&gt;</c> as in
    /// subjects), read in one stream info request (<c>subjects_filter</c>): the server lists the bucket's subjects in one
    /// pass under its store lock, so a key that exists throughout is listed even while it is rewritten. A deleted key whose
    /// delete marker is still stored is listed too: a caller reads the entry before counting it. At most the first
    /// 100,000 keys (the server's page).
    /// </summary>
    /// <remarks>
    /// Not <see cref="INatsKVStore.GetKeysAsync(IEnumerable{string}, NatsKVWatchOpts?, CancellationToken)"/>: its ordered
    /// consumer stops at the first message whose pending count is 0, and with one revision per key a rewrite lowers that
    /// count at once (the old revision is removed) but raises it for the new one only later (the server signals consumers
    /// asynchronously), so a listing during a rewrite can end before the key's new revision and miss it.
    /// </remarks>
    public static async Task<IReadOnlyList<string>> KeysAsync(INatsKVStore store, string filter, CancellationToken cancellationToken)
    {
        var prefix = $"$KV.{store.Bucket}.";
        var stream = await store.JetStreamContext.GetStreamAsync(
            "KV_" + store.Bucket,
            new StreamInfoRequest { SubjectsFilter = prefix + filter },
            cancellationToken);
        return stream.Info.State.Subjects is { } subjects ? [.. subjects.Keys.Select(subject => subject[prefix.Length..])] : [];
    }
}
