using System.Buffers;
using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

/// <summary>
/// Where the stream's acks for the worker's publishes arrive: one subscription on an inbox of the worker's own
/// (<c>_INBOX.&lt;nuid&gt;.*</c>). Each publish is sent with the reply subject <c>_INBOX.&lt;nuid&gt;.&lt;n&gt;</c> and
/// its ack is matched to it by <c>n</c>. A publish not answered within <c>PublishTimeout</c> of its start fails, found
/// by a sweep every quarter of that time, at most every second (so it fails at most that long after its timeout).
/// </summary>
/// <remarks>
/// NATS.Net's <c>PublishConcurrentAsync</c> subscribes an inbox per publish and unsubscribes it after the ack (a
/// subscription with its channel, timer and weak-table entry, and an exception object on every unsubscribe): at
/// thousands of publishes a second that was most of what the worker allocated (docs/benchmarks.md, "Ingest").
/// </remarks>
internal sealed class AckInbox : IAsyncDisposable
{
    private readonly ConcurrentDictionary<long, PendingPublish> _pending = new();
    private readonly NatsContext _nats;
    private readonly TimeProvider _time;
    private readonly TimeSpan _timeout;
    private readonly Lock _gate = new();
    private Task<string>? _prefix;
    private ITimer? _sweep;
    private NatsSubBase? _subscription;
    private long _last;
    private bool _disposed;

    public AckInbox(NatsContext nats, IOptions<NatsOptions> options, TimeProvider time)
    {
        _nats = nats;
        _time = time;
        _timeout = options.Value.PublishTimeout;
    }

    /// <summary>Publishes registered and neither answered, failed nor forgotten yet.</summary>
    public int Pending => _pending.Count;

    /// <summary>
    /// A new publish waiting for its ack, with the reply subject to send it with. Subscribes the inbox first if this
    /// is the worker's first publish (or an earlier subscribe failed).
    /// </summary>
    public ValueTask<PendingPublish> RegisterAsync(CancellationToken cancellationToken)
    {
        var prefix = Volatile.Read(ref _prefix);
        return prefix is { IsCompletedSuccessfully: true }
            ? ValueTask.FromResult(Register(prefix.Result))
            : RegisterSlowAsync(cancellationToken);
    }

    private async ValueTask<PendingPublish> RegisterSlowAsync(CancellationToken cancellationToken)
    {
        Task<string> prefix;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            if (_prefix is null || _prefix.IsFaulted || _prefix.IsCanceled)
            {
                _prefix = SubscribeAsync();
            }

            prefix = _prefix;
        }

        return Register(await prefix.WaitAsync(cancellationToken));
    }

    private async Task<string> SubscribeAsync()
    {
        // Not under the connection's own inbox prefix (NewInbox()): NATS.Net routes those through its request
        // multiplexer, which matches exact subjects only, so a wildcard there would receive nothing.
        var prefix = $"{_nats.Connection.Opts.InboxPrefix}.{Guid.NewGuid():N}.";
        var subscription = new AckSubscription(this, _nats.Connection, prefix + "*");
        await _nats.Connection.AddSubAsync(subscription);
        var period = TimeSpan.FromTicks(Math.Clamp(_timeout.Ticks / 4, TimeSpan.FromMilliseconds(50).Ticks, TimeSpan.FromSeconds(1).Ticks));
        lock (_gate)
        {
            // NATS.Net holds subscriptions by weak reference: this one lives as long as the inbox.
            _subscription = subscription;
            _sweep ??= _time.CreateTimer(static s => ((AckInbox)s!).FailExpired(), this, period, period);
        }

        return prefix;
    }

    private PendingPublish Register(string prefix)
    {
        var n = Interlocked.Increment(ref _last);
        var replyTo = string.Create(CultureInfo.InvariantCulture, $"{prefix}{n}");
        var pending = new PendingPublish(this, n, replyTo, _time.GetTimestamp());
        _pending[n] = pending;
        return pending;
    }

    /// <summary>Stops waiting for a publish's ack (it could not be written, or its caller gave up).</summary>
    public void Forget(PendingPublish pending) => _pending.TryRemove(new KeyValuePair<long, PendingPublish>(pending.Number, pending));

    /// <summary>An ack arrived on <paramref name="subject"/>: completes its publish. Never throws (it runs on NATS.Net's read loop).</summary>
    private void Deliver(string subject, ReadOnlySequence<byte>? headers, ReadOnlySequence<byte> payload)
    {
        var dot = subject.LastIndexOf('.');
        if (!long.TryParse(subject.AsSpan(dot + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n) ||
            !_pending.TryRemove(n, out var pending))
        {
            return; // late (its publish already failed) or not ours
        }

        pending.Answer(PubAck.Read(headers, payload));
    }

    private void FailExpired()
    {
        var now = _time.GetTimestamp();
        foreach (var (n, pending) in _pending)
        {
            if (_time.GetElapsedTime(pending.Started, now) >= _timeout && _pending.TryRemove(n, out _))
            {
                pending.Answer(PubAck.Failure(new TimeoutException($"the stream did not acknowledge the publish within {_timeout.TotalSeconds:0.###} s")));
            }
        }
    }

    public ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            _disposed = true;
            _sweep?.Dispose();
        }

        // The subscription ends with the connection (NatsContext); what still waits fails now.
        foreach (var n in _pending.Keys)
        {
            if (_pending.TryRemove(n, out var pending))
            {
                pending.Answer(PubAck.Failure(new ObjectDisposedException(nameof(AckInbox))));
            }
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>NATS.Net's low-level subscription: each message handed over on its read loop, as raw buffers.</summary>
    private sealed class AckSubscription(AckInbox inbox, NatsConnection connection, string subject)
        : NatsSubBase(connection, connection.SubscriptionManager, subject, queueGroup: null, opts: null)
    {
        protected override ValueTask ReceiveInternalAsync(string subject, string? replyTo, ReadOnlySequence<byte>? headersBuffer, ReadOnlySequence<byte> payloadBuffer)
        {
            inbox.Deliver(subject, headersBuffer, payloadBuffer);
            return ValueTask.CompletedTask;
        }

        protected override void TryComplete()
        {
        }
    }
}
