using NATS.Client.Core;
using NATS.Client.JetStream;
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
}
