using System.Threading.RateLimiting;

namespace Bridge.Worker.Limits;

/// <summary>The one shape of token bucket the worker uses (frames per connection, backend API requests per caller).</summary>
internal static class TokenBuckets
{
    /// <summary>
    /// <paramref name="perSecond"/> tokens a second, at most <paramref name="burst"/> saved up, never queued. Refilled
    /// ten times a second, so a caller at its sustained rate never waits a whole second.
    /// </summary>
    public static TokenBucketRateLimiterOptions PerSecond(int perSecond, int burst)
    {
        var perTick = Math.Max(1, (int)Math.Ceiling(perSecond / 10.0));
        return new TokenBucketRateLimiterOptions
        {
            TokenLimit = burst,
            TokensPerPeriod = perTick,
            ReplenishmentPeriod = TimeSpan.FromSeconds(perTick / (double)perSecond),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
    }
}
