using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Backend;

/// <summary>
/// Requests per caller of the backend API: a token bucket per caller (System.Threading.RateLimiting's partitioned
/// limiter, <see cref="Limits.TokenBuckets"/>). A broadcast takes one token per room.
/// </summary>
internal sealed class ApiRateLimiter : IDisposable
{
    private readonly PartitionedRateLimiter<string> _limiter;

    public ApiRateLimiter(IOptions<ApiOptions> options)
    {
        var o = options.Value;
        var bucket = Limits.TokenBuckets.PerSecond(o.RequestsPerSecond, o.Burst);
        _limiter = PartitionedRateLimiter.Create<string, string>(caller => RateLimitPartition.GetTokenBucketLimiter(caller, _ => bucket));
    }

    /// <summary>Takes <paramref name="permits"/> tokens for the caller; when refused, how long until they are there.</summary>
    public bool TryAcquire(string caller, int permits, out TimeSpan retryAfter)
    {
        using var lease = _limiter.AttemptAcquire(caller, permits);
        retryAfter = TimeSpan.Zero;
        if (lease.IsAcquired)
        {
            return true;
        }

        retryAfter = lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
        return false;
    }

    public void Dispose() => _limiter.Dispose();
}
