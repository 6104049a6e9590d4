using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Limits;

/// <summary>
/// Inbound frames per connection: a token bucket per connection id (System.Threading.RateLimiting's partitioned
/// limiter, which refills every bucket from one timer and drops buckets of connections that went idle).
/// </summary>
internal sealed class MessageRateLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter;

    public MessageRateLimiter(IOptions<LimitOptions> options)
    {
        var o = options.Value;
        var bucket = TokenBuckets.PerSecond(o.MessagesPerSecond, o.MessageBurst);
        // One limiter factory for every partition, made once: the partition lookup runs on every frame
        // (GetTokenBucketLimiter would wrap its factory in a new delegate each time).
        Func<string, RateLimiter> create = _ => new TokenBucketRateLimiter(bucket);
        _limiter = PartitionedRateLimiter.Create<string, string>(id => RateLimitPartition.Get(id, create));
    }

    /// <summary>Takes one token for the connection; false when its bucket is empty.</summary>
    public bool TryAcquire(string connectionId)
    {
        using var lease = _limiter.AttemptAcquire(connectionId);
        return lease.IsAcquired;
    }

    public void Dispose() => _limiter.Dispose();
}
