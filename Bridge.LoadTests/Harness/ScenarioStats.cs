using System.Collections.Concurrent;
using System.Diagnostics;
using HdrHistogram;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// What one scenario measured. Messages carry their publish time (one clock: publisher and receivers share this
/// process); only messages published inside the measured window are counted, so warm-up traffic that arrives
/// late never skews the numbers.
/// </summary>
internal sealed class ScenarioStats
{
    private readonly ConcurrentDictionary<string, long> _errors = new(StringComparer.Ordinal);
    private long _sent;
    private long _expected;
    private long _delivered;
    private long _duplicated;
    private long _gaps;
    private long _lastDeliveryTs;
    private long _measureStartTs = long.MaxValue;
    private long _measureEndTs = long.MaxValue;

    /// <summary>Publish-to-receive latency in microseconds (<see cref="Latencies"/>); recorded from many readers without a lock.</summary>
    public LongConcurrentHistogram Latency { get; } = Latencies.Create();

    public long Sent => Interlocked.Read(ref _sent);

    /// <summary>Deliveries the counted messages should produce (sent × receivers of each).</summary>
    public long Expected => Interlocked.Read(ref _expected);

    /// <summary>Counted messages received, duplicates excluded.</summary>
    public long Delivered => Interlocked.Read(ref _delivered);

    public long Duplicated => Interlocked.Read(ref _duplicated);

    /// <summary>Sequence gaps seen by receivers (a message missing between two received ones), warm-up included.</summary>
    public long Gaps => Interlocked.Read(ref _gaps);

    /// <summary>Set by the harness after the drain: expected deliveries that never arrived.</summary>
    public long Lost { get; set; }

    public bool Measuring => Stopwatch.GetTimestamp() >= Interlocked.Read(ref _measureStartTs) && Interlocked.Read(ref _measureEndTs) == long.MaxValue;

    public long MeasureStartTs => Interlocked.Read(ref _measureStartTs);

    public long MeasureEndTs => Interlocked.Read(ref _measureEndTs);

    public long LastDeliveryTs => Interlocked.Read(ref _lastDeliveryTs);

    public IReadOnlyDictionary<string, long> Errors => _errors;

    public long ErrorCount => _errors.Values.Sum();

    public void BeginMeasure()
    {
        Latency.Reset();
        Interlocked.Exchange(ref _measureEndTs, long.MaxValue);
        Interlocked.Exchange(ref _measureStartTs, Stopwatch.GetTimestamp());
    }

    public void EndMeasure() => Interlocked.Exchange(ref _measureEndTs, Stopwatch.GetTimestamp());

    /// <summary>True for a message published inside the measured window.</summary>
    public bool IsCounted(long sentTs) => sentTs >= MeasureStartTs && sentTs <= MeasureEndTs;

    /// <summary>A message was published at <paramref name="sentTs"/> for <paramref name="receivers"/> receivers.</summary>
    public void OnSent(long sentTs, int receivers)
    {
        if (IsCounted(sentTs))
        {
            Interlocked.Increment(ref _sent);
            Interlocked.Add(ref _expected, receivers);
        }
    }

    public void OnDelivered(long sentTs, long receivedTs)
    {
        if (!IsCounted(sentTs))
        {
            return;
        }

        Interlocked.Increment(ref _delivered);
        Latency.RecordElapsed(sentTs, receivedTs);
        long last;
        while ((last = Interlocked.Read(ref _lastDeliveryTs)) < receivedTs && Interlocked.CompareExchange(ref _lastDeliveryTs, receivedTs, last) != last)
        {
        }
    }

    public void OnDuplicate(long sentTs)
    {
        if (IsCounted(sentTs))
        {
            Interlocked.Increment(ref _duplicated);
        }
    }

    public void OnGap(long missing) => Interlocked.Add(ref _gaps, missing);

    /// <summary>Counts an error of a kind (e.g. <c>connect: 401</c>, <c>closed: 4008</c>, <c>publish: timeout</c>).</summary>
    public void Error(string kind) => _errors.AddOrUpdate(kind, 1, (_, n) => n + 1);

    /// <summary>A load client's own code threw while counting (a harness bug): an error of the run, never silence.</summary>
    public void ClientFailed(Exception exception) => Error($"load client failed: {exception.GetType().Name}: {exception.Message}");

    /// <summary>Adds counts measured outside the delivery path (e.g. a reconnect storm's own accounting).</summary>
    public void Add(long sent = 0, long expected = 0, long delivered = 0, long duplicated = 0)
    {
        Interlocked.Add(ref _sent, sent);
        Interlocked.Add(ref _expected, expected);
        Interlocked.Add(ref _delivered, delivered);
        Interlocked.Add(ref _duplicated, duplicated);
    }
}

/// <summary>
/// One receiver's view of the load messages: duplicates and gaps per room (each room has one publisher with a
/// per-room sequence <c>n</c>, and every system measured here keeps a room's order on one connection).
/// Not thread-safe: one tracker per reading loop.
/// </summary>
internal sealed class DeliveryTracker(ScenarioStats stats)
{
    private readonly Dictionary<int, long> _last = [];
    private long _received;

    public long Received => Interlocked.Read(ref _received);

    /// <summary>Counting a message threw (a harness bug): reported as an error of the run.</summary>
    public void Failed(Exception exception) => stats.ClientFailed(exception);

    public void OnJsonBody(ReadOnlySpan<byte> json)
    {
        if (LoadPayload.TryParse(json, out var sent, out var n, out var room))
        {
            OnMessage(sent, n, room);
        }
    }

    public void OnMessage(long sentTs, long n, int room)
    {
        var now = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _received);
        if (_last.TryGetValue(room, out var last))
        {
            if (n <= last)
            {
                stats.OnDuplicate(sentTs);
                return;
            }

            if (n > last + 1)
            {
                stats.OnGap(n - last - 1);
            }
        }

        _last[room] = n;
        stats.OnDelivered(sentTs, now);
    }
}
