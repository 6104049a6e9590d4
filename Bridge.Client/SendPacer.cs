using System.Threading.RateLimiting;

namespace Bridge.Client;

/// <summary>
/// Paces one connection's frames within the frame rate limit its worker announced in <c>welcome</c>
/// (<c>framesPerSecond</c>, <c>frameBurst</c>: docs/protocol.md §1.1), so a queue of publishes flushed on (re)connect is
/// not refused <c>rate_limited</c>. A token bucket (System.Threading.RateLimiting) with headroom: 4/5 of the rate and
/// half the burst, for what the client cannot see (frames sent apart that arrive together, the worker's bucket being
/// refilled ten times a second). Publishes wait for a token (<see cref="TryTake"/>); every other frame takes one if
/// there is one (<see cref="Debit"/>) and goes anyway (a join or a request does not wait behind a queue of
/// publishes), so the publishes after it leave it room.
/// </summary>
internal sealed class SendPacer : IDisposable
{
    private readonly TokenBucketRateLimiter _bucket;

    public SendPacer(int framesPerSecond, int frameBurst)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(framesPerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(frameBurst, 1);
        var rate = framesPerSecond * 0.8;
        var perTick = Math.Max(1, (int)Math.Ceiling(rate / 10));
        Period = TimeSpan.FromSeconds(perTick / rate);
        _bucket = new TokenBucketRateLimiter(new TokenBucketRateLimiterOptions
        {
            TokenLimit = Math.Max(1, frameBurst / 2),
            TokensPerPeriod = perTick,
            ReplenishmentPeriod = Period,
            QueueLimit = 0,
            AutoReplenishment = true,
        });
    }

    /// <summary>How often the bucket is refilled: when a publish found it empty, the time to try again.</summary>
    public TimeSpan Period { get; }

    /// <summary>Takes a token for a publish; false when there is none now (the publish waits).</summary>
    public bool TryTake()
    {
        try
        {
            using var lease = _bucket.AttemptAcquire();
            return lease.IsAcquired;
        }
        catch (ObjectDisposedException)
        {
            return true; // the connection ended: what it sends goes nowhere
        }
    }

    /// <summary>Another frame goes out: takes a token if there is one.</summary>
    public void Debit() => TryTake();

    /// <summary>The worker refused a frame <c>rate_limited</c>: its bucket is empty, so this one is too.</summary>
    public void Drain()
    {
        try
        {
            var available = (int)Math.Min(int.MaxValue, _bucket.GetStatistics()?.CurrentAvailablePermits ?? 0);
            if (available > 0)
            {
                _bucket.AttemptAcquire(available).Dispose();
            }
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose() => _bucket.Dispose();
}
