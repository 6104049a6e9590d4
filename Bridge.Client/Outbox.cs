using Bridge.Client.Protocol;
using Bridge.Contracts;
using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>A publish waiting for its ack: queued, in flight, or waiting to be retried (its send state is the <see cref="Outbox"/>'s).</summary>
internal sealed class PendingPublish(string room, string id, byte[] frame)
{
    public string Room { get; } = room;

    public string Id { get; } = id;

    /// <summary>The encoded frame, sent as is on every attempt (same id, so the server stores it once).</summary>
    public byte[] Frame { get; } = frame;

    public Task<Ack> Acked => Completion.Task;

    internal TaskCompletionSource<Ack> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// The publishes waiting for their ack, oldest first, bounded by <see cref="BridgeClientOptions.MaxQueuedPublishes"/>.
/// It sends each on the ready connection once (in order, under its lock), again on every new connection until the
/// ack comes, and again after a retryable refusal, always with the same id, so the server stores it once (§9).
/// Sends are strictly in call order: one waiting (for its retry time, for the connection's <see cref="SendPacer"/>)
/// holds back every publish after it, and one refused <c>rate_limited</c> is sent again only once every publish sent
/// after it has been answered (docs/protocol.md §1.1).
/// It also owns the frame limit publishes are held to: <see cref="BridgeClientOptions.MaxFrameBytes"/>, or the
/// worker's smaller one from the ready connection's <c>welcome</c> (forgotten when that connection ends).
/// </summary>
internal sealed class Outbox(BridgeClientOptions options, ILogger logger)
{
    /// <summary>
    /// <c>rate_limited</c> refusals of one publish before it fails with that code. They do not count towards
    /// <see cref="BridgeClientOptions.MaxPublishAttempts"/> (the frame was not acted on), and the sends are paced to
    /// the worker's announced rate, so a publish is refused this often only when the worker refuses nearly everything.
    /// </summary>
    public const int MaxRateLimitedRefusals = 20;

    private readonly Lock _lock = new();
    private readonly LinkedList<Entry> _queue = new();
    private readonly Dictionary<string, LinkedListNode<Entry>> _byId = new(StringComparer.Ordinal);
    private readonly TimeProvider _time = options.TimeProvider;

    // The connection publishes go out on: set once it is ready (welcomed, live rooms joined).
    private Connection? _connection;
    private BridgeException? _closed;

    // The largest publish frame sent: the option, or the worker's smaller one from the ready connection's welcome
    // (Attach) until that connection ends (Detach): the next worker may allow more, and says so in its own welcome.
    private int _frameLimit = options.MaxFrameBytes;

    // The last flush stopped at a publish refused rate_limited because publishes sent after it were still unanswered:
    // each answer flushes again.
    private bool _waitingForAnswers;

    // Flushes again when the pacer has refilled (one timer, re-armed).
    private ITimer? _paceTimer;

    public int Count
    {
        get
        {
            lock (_lock)
            {
                return _queue.Count;
            }
        }
    }

    /// <summary>Queues a publish and sends it at once when a connection is ready. Throws <see cref="BridgeException"/>
    /// <c>frame_too_big</c>, <c>duplicate_id</c>, <c>queue_full</c>, or the code the client closed with.</summary>
    public void Add(PendingPublish publish)
    {
        lock (_lock)
        {
            if (_closed is { } closed)
            {
                throw closed.Again(publish.Id);
            }

            if (TooBigLocked(publish) is { } tooBig)
            {
                throw tooBig;
            }

            if (_byId.ContainsKey(publish.Id))
            {
                throw new BridgeException("duplicate_id", $"a publish with id '{publish.Id}' is already waiting for its ack", publish.Id);
            }

            if (_queue.Count >= options.MaxQueuedPublishes)
            {
                throw new BridgeException("queue_full", $"{options.MaxQueuedPublishes} publishes are already waiting for their ack", publish.Id);
            }

            _byId[publish.Id] = _queue.AddLast(new Entry(publish));
            FlushLocked();
        }
    }

    /// <summary>
    /// The caller stopped waiting: drops the publish if the server cannot have stored it (never sent, or every send
    /// answered <c>rate_limited</c>), and the publishes it held back go at once; one that may be stored stays, and is
    /// sent until it is acked. One in flight now is dropped when its answer is <c>rate_limited</c> (it was not stored
    /// after all: see <see cref="TryFail"/>).
    /// </summary>
    public void CancelUnsent(PendingPublish publish)
    {
        lock (_lock)
        {
            if (!_byId.TryGetValue(publish.Id, out var node) || node.Value.Publish != publish)
            {
                return;
            }

            if (!node.Value.MayBeStored && node.Value.SentEpoch == -1)
            {
                _byId.Remove(publish.Id);
                _queue.Remove(node);
                // It may have been what held the publishes after it (waiting for its retry time, or to be sent again
                // after a rate_limited refusal): they go now, not at the watchdog's next tick.
                FlushLocked();
            }
            else
            {
                node.Value.Abandoned = true;
            }
        }
    }

    /// <summary>The connection is ready: sends everything waiting on it, oldest first, within the frame limit its
    /// <paramref name="welcome"/> makes.</summary>
    public void Attach(Connection connection, WelcomeInfo welcome)
    {
        lock (_lock)
        {
            _connection = connection;
            _frameLimit = welcome.FrameLimit(options.MaxFrameBytes);
            FlushLocked();
        }
    }

    /// <summary>The connection ended: everything not acked is sent again on the next one, and its worker's frame limit
    /// no longer applies (a publish made meanwhile is held to the option, and to the next worker's limit when due).</summary>
    public void Detach(Connection connection)
    {
        lock (_lock)
        {
            if (_connection == connection)
            {
                _connection = null;
                _frameLimit = options.MaxFrameBytes;
            }

            _waitingForAnswers = false;
            foreach (var entry in _queue)
            {
                // Sent and not answered: the worker may have stored it.
                entry.MayBeStored |= entry.SentEpoch != -1;
                entry.SentEpoch = -1;
            }
        }
    }

    /// <summary>An <c>ack</c>: completes its publish; false when none waits for it.</summary>
    public bool TryAck(string? id, ulong seq, bool duplicate)
    {
        PendingPublish publish;
        lock (_lock)
        {
            if (id is null || !_byId.Remove(id, out var node))
            {
                return false;
            }

            _queue.Remove(node);
            publish = node.Value.Publish;
            if (_waitingForAnswers)
            {
                FlushLocked();
            }
        }

        publish.Completion.TrySetResult(new Ack(publish.Room, publish.Id, seq, duplicate));
        return true;
    }

    /// <summary>
    /// An <c>error</c> whose <c>ref</c> is a publish: <c>publish_failed</c> is retried with the same id after a backoff
    /// (up to <see cref="BridgeClientOptions.MaxPublishAttempts"/>); <c>rate_limited</c> (not acted on: not an attempt)
    /// is sent again once the publishes sent after it are answered, within the pacer's rate (after a backoff from a
    /// worker that announces no rate), up to <see cref="MaxRateLimitedRefusals"/> times, unless its caller cancelled
    /// while it was in flight and no send of it can have been stored (then it is dropped); anything else fails the
    /// publish. Either retry holds back the publishes after it, so they are stored in call order. False when no
    /// publish has that id.
    /// </summary>
    public bool TryFail(string reference, BridgeException error)
    {
        PendingPublish publish;
        lock (_lock)
        {
            if (!_byId.TryGetValue(reference, out var node))
            {
                return false;
            }

            var entry = node.Value;
            publish = entry.Publish;
            entry.SentEpoch = -1;
            if (error.Code is ErrorCodes.RateLimited && entry is { Abandoned: true, MayBeStored: false })
            {
                // Its caller cancelled while it was in flight, and it was not stored (no send of it can have been):
                // dropped, as a cancelled publish never sent is, not sent again behind the caller's back.
                _byId.Remove(reference);
                _queue.Remove(node);
                _connection?.Pacer?.Drain(); // the worker's bucket is empty
                FlushLocked();
                return true;
            }

            if (error.Code is ErrorCodes.RateLimited && ++entry.RateLimitedRefusals < MaxRateLimitedRefusals)
            {
                // Not acted on: sent again, before any later publish, once those sent after it are answered.
                entry.RateLimited = true;
                TimeSpan delay;
                if (_connection?.Pacer is { } pacer)
                {
                    pacer.Drain(); // the worker's bucket is empty: nothing goes before its next refill
                    delay = pacer.NextTry;
                }
                else
                {
                    delay = Backoff.Delay(options, entry.RateLimitedRefusals);
                    entry.RetryAt = Backoff.TimestampAfter(_time, delay);
                }

                logger.PublishRetry(publish.Id, publish.Room, error.Code, entry.RateLimitedRefusals, (long)delay.TotalMilliseconds);
                FlushLocked();
                return true;
            }

            if (error.Code is ErrorCodes.PublishFailed && ++entry.Failures < options.MaxPublishAttempts)
            {
                entry.MayBeStored = true;
                // May or may not be stored: retry later with the same id (the server answers the original seq if it was).
                var delay = Backoff.Delay(options, entry.Failures);
                entry.RetryAt = Backoff.TimestampAfter(_time, delay);
                logger.PublishRetry(publish.Id, publish.Room, error.Code, entry.Failures, (long)delay.TotalMilliseconds);
                if (_waitingForAnswers)
                {
                    FlushLocked();
                }

                return true;
            }

            _byId.Remove(reference);
            _queue.Remove(node);
            if (_waitingForAnswers)
            {
                FlushLocked();
            }
        }

        logger.PublishFailed(publish.Id, publish.Room, error.Code);
        publish.Completion.TrySetException(error);
        return true;
    }

    /// <summary>
    /// The watchdog's tick: releases publishes whose retry time has come and sends them. Returns the TimeProvider
    /// timestamp of the oldest publish in flight on <paramref name="connection"/> (sent, no ack yet), or null.
    /// </summary>
    public long? Tick(Connection connection, long now)
    {
        lock (_lock)
        {
            long? oldest = null;
            foreach (var entry in _queue)
            {
                if (entry.RetryAt is { } at && now >= at)
                {
                    entry.RetryAt = null;
                }
                else if (entry.SentEpoch == connection.Epoch && (oldest is null || entry.SentAt < oldest))
                {
                    oldest = entry.SentAt;
                }
            }

            FlushLocked();
            return oldest;
        }
    }

    /// <summary>The client closed for good: fails every publish with <paramref name="error"/>'s code and takes no new one.</summary>
    public void Close(BridgeException error)
    {
        List<PendingPublish> failed;
        lock (_lock)
        {
            _closed ??= error;
            _paceTimer?.Dispose();
            _paceTimer = null;
            failed = [.. _queue.Select(e => e.Publish)];
            _queue.Clear();
            _byId.Clear();
        }

        foreach (var publish in failed)
        {
            publish.Completion.TrySetException(error.Again(publish.Id));
        }
    }

    /// <summary>
    /// Sends the publishes not yet sent on the ready connection, oldest first (one FIFO, under the lock: in order). One
    /// over the frame limit (queued before the welcome said the worker's) fails with <c>frame_too_big</c> instead. The
    /// first one that cannot go now holds back all after it: waiting for its retry time, for a token of the
    /// connection's <see cref="SendPacer"/> (then a timer flushes again when it refills), or, refused
    /// <c>rate_limited</c>, for the answers to the publishes sent after it (a refusal of the worker's rate usually
    /// refuses those too: they are sent again after it, in order; each answer flushes again).
    /// </summary>
    private void FlushLocked()
    {
        _waitingForAnswers = false;
        if (_connection is not { } connection)
        {
            return;
        }

        var now = _time.GetTimestamp();
        var held = false;
        for (var node = _queue.First; node is not null;)
        {
            var entry = node.Value;
            var next = node.Next;
            if (TooBigLocked(entry.Publish) is { } tooBig)
            {
                _byId.Remove(entry.Publish.Id);
                _queue.Remove(node);
                logger.PublishFailed(entry.Publish.Id, entry.Publish.Room, tooBig.Code);
                entry.Publish.Completion.TrySetException(tooBig); // continuations run asynchronously: not under the lock
                node = next;
                continue;
            }

            node = next;
            if (held || entry.SentEpoch == connection.Epoch)
            {
                continue;
            }

            if (entry.RetryAt is not null)
            {
                held = true;
                continue;
            }

            if (entry.RateLimited && SentAfterLocked(next, connection))
            {
                held = true;
                _waitingForAnswers = true;
                continue;
            }

            if (connection.Pacer is { } pacer && !pacer.TryTake())
            {
                held = true;
                SchedulePaceLocked(pacer.NextTry);
                continue;
            }

            connection.SendPaced(entry.Publish.Frame);
            entry.SentEpoch = connection.Epoch;
            entry.SentAt = now;
            entry.RateLimited = false;
        }
    }

    /// <summary>True when a publish from <paramref name="node"/> on is in flight on <paramref name="connection"/>.</summary>
    private static bool SentAfterLocked(LinkedListNode<Entry>? node, Connection connection)
    {
        for (; node is not null; node = node.Next)
        {
            if (node.Value.SentEpoch == connection.Epoch)
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Flushes again after <paramref name="due"/> (the pacer's refill).</summary>
    private void SchedulePaceLocked(TimeSpan due)
    {
        if (_paceTimer is null)
        {
            _paceTimer = _time.CreateTimer(
                static state =>
                {
                    var outbox = (Outbox)state!;
                    lock (outbox._lock)
                    {
                        outbox.FlushLocked();
                    }
                },
                this,
                due,
                Timeout.InfiniteTimeSpan);
        }
        else
        {
            _paceTimer.Change(due, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary><c>frame_too_big</c> when <paramref name="publish"/>'s frame is over the frame limit, else null.</summary>
    private BridgeException? TooBigLocked(PendingPublish publish)
    {
        if (publish.Frame.Length <= _frameLimit)
        {
            return null;
        }

        var whose = _frameLimit < options.MaxFrameBytes ? "the worker's maxFrameBytes" : "MaxFrameBytes";
        return new BridgeException("frame_too_big", $"the frame is {publish.Frame.Length} bytes, over {whose} ({_frameLimit})", publish.Id);
    }

    /// <summary>A queued publish and its send state; guarded by the outbox's lock.</summary>
    private sealed class Entry(PendingPublish publish)
    {
        public PendingPublish Publish { get; } = publish;

        /// <summary>The connection epoch it was last sent on; -1 when it still has to be (re)sent.</summary>
        public int SentEpoch { get; set; } = -1;

        /// <summary>TimeProvider timestamp of the last send.</summary>
        public long SentAt { get; set; }

        /// <summary>A send of it may have been stored (not answered before its connection ended, or <c>publish_failed</c>),
        /// so cancelling no longer drops it.</summary>
        public bool MayBeStored { get; set; }

        /// <summary>Its caller stopped waiting while it may have been stored (in flight, or <see cref="MayBeStored"/>).</summary>
        public bool Abandoned { get; set; }

        /// <summary><c>publish_failed</c> answers: attempts, up to <see cref="BridgeClientOptions.MaxPublishAttempts"/>.</summary>
        public int Failures { get; set; }

        /// <summary><c>rate_limited</c> answers, up to <see cref="MaxRateLimitedRefusals"/>.</summary>
        public int RateLimitedRefusals { get; set; }

        /// <summary>Refused <c>rate_limited</c> and not sent since.</summary>
        public bool RateLimited { get; set; }

        /// <summary>After <c>publish_failed</c> (or <c>rate_limited</c> from a worker that announces no rate): not
        /// before this TimeProvider timestamp.</summary>
        public long? RetryAt { get; set; }
    }
}
