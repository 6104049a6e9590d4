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
        FramesPerSecond = o.MessagesPerSecond;
        Burst = o.MessageBurst;
        var bucket = TokenBuckets.PerSecond(o.MessagesPerSecond, o.MessageBurst);
        // One limiter factory for every partition, made once: the partition lookup runs on every frame
        // (GetTokenBucketLimiter would wrap its factory in a new delegate each time).
        Func<string, RateLimiter> create = _ => new TokenBucketRateLimiter(bucket);
        _limiter = PartitionedRateLimiter.Create<string, string>(id => RateLimitPartition.Get(id, create));
    }

    /// <summary>Frames per second a connection may send, sustained (the bucket's refill): <c>welcome</c>'s <c>framesPerSecond</c>.</summary>
    public int FramesPerSecond { get; }

    /// <summary>Frames a connection may send at once (the bucket's size): <c>welcome</c>'s <c>frameBurst</c>.</summary>
    public int Burst { get; }

    /// <summary>Takes one token for the connection; false when its bucket is empty.</summary>
    public bool TryAcquire(string connectionId)
    {
        using var lease = _limiter.AttemptAcquire(connectionId);
        return lease.IsAcquired;
    }

    public void Dispose() => _limiter.Dispose();
}
