using System.Threading.RateLimiting;

namespace Bridge.Client;

/// <summary>
/// Paces one connection's frames within the frame rate limit its worker announced in <c>welcome</c>
/// (<c>framesPerSecond</c>, <c>frameBurst</c>: docs/protocol.md §1.1), so a queue of publishes flushed on (re)connect is
/// not refused <c>rate_limited</c>. A token bucket (System.Threading.RateLimiting) with headroom: 4/5 of the rate and
/// half the burst, for what the client cannot see (frames sent apart that arrive together, the worker's bucket being
/// refilled ten times a second). Publishes wait for a token (<see cref="TryTake"/>); every other frame takes one if
/// there is one (<see cref="Debit"/>) and goes anyway (a join or a request does not wait behind a queue of
/// publishes), so the publishes after it leave it room. After a <c>rate_limited</c> refusal (<see cref="Drain"/>) no
/// publish goes before the worker has refilled its bucket once (docs/protocol.md §12): its own refill comes at a time
/// of its own, which may be just after the refusal, and a publish sent then would only be refused again.
/// </summary>
internal sealed class SendPacer : IDisposable
{
    private readonly TokenBucketRateLimiter _bucket;
    private readonly TimeProvider _time;

    // TimeProvider timestamp before which no publish goes (the worker's bucket was empty: Drain); read and written with
    // Volatile, as publishes take tokens under the outbox's lock and other frames from their senders.
    private long _holdUntil;

    public SendPacer(int framesPerSecond, int frameBurst, TimeProvider time)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(framesPerSecond, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(frameBurst, 1);
        var rate = framesPerSecond * 0.8;
        var perTick = Math.Max(1, (int)Math.Ceiling(rate / 10));
        Period = TimeSpan.FromSeconds(perTick / rate);
        // The worker's refill interval, as its bucket has it (TokenBuckets.PerSecond): ⌈rate / 10⌉ tokens at a time.
        var workerPerTick = Math.Max(1, (int)Math.Ceiling(framesPerSecond / 10.0));
        WorkerRefill = TimeSpan.FromSeconds(workerPerTick / (double)framesPerSecond);
        _time = time;
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

    /// <summary>How often the worker refills its bucket: after a <c>rate_limited</c> refusal, the least wait.</summary>
    public TimeSpan WorkerRefill { get; }

    /// <summary>When a publish found no token (<see cref="TryTake"/>), the time to try again: the rest of the hold
    /// after a refusal (<see cref="Drain"/>), else <see cref="Period"/>.</summary>
    public TimeSpan NextTry
    {
        get
        {
            var now = _time.GetTimestamp();
            var holdUntil = Volatile.Read(ref _holdUntil);
            return now < holdUntil ? _time.GetElapsedTime(now, holdUntil) : Period;
        }
    }

    /// <summary>Takes a token for a publish; false when there is none now, or the worker's bucket is being refilled
    /// after a refusal (the publish waits).</summary>
    public bool TryTake()
    {
        if (_time.GetTimestamp() < Volatile.Read(ref _holdUntil))
        {
            return false;
        }

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

    /// <summary>
    /// The worker refused a frame <c>rate_limited</c>: its bucket is empty, so this one is too, and no publish goes for
    /// one <see cref="WorkerRefill"/> from now (the refusal was sent before it came).
    /// </summary>
    public void Drain()
    {
        var now = _time.GetTimestamp();
        Volatile.Write(ref _holdUntil, now + (long)(WorkerRefill.TotalSeconds * _time.TimestampFrequency));
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
