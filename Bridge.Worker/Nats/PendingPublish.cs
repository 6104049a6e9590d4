using System.Threading.Tasks.Sources;

namespace Bridge.Worker.Nats;

/// <summary>
/// A publish written to NATS whose stream ack has not been read yet; <see cref="AckInbox"/> answers it with the ack,
/// or fails it once <c>PublishTimeout</c> has passed.
/// </summary>
internal sealed class PendingPublish : IValueTaskSource<PublishResult>
{
    private readonly AckInbox _inbox;

    // Continuations run on the thread pool, never on NATS.Net's read loop, which answers the ack.
    private ManualResetValueTaskSourceCore<PublishResult> _core = new() { RunContinuationsAsynchronously = true };
    private CancellationTokenRegistration _cancellation;
    private int _answered;

    internal PendingPublish(AckInbox inbox, long number, string replyTo, long started)
    {
        _inbox = inbox;
        Number = number;
        ReplyTo = replyTo;
        Started = started;
    }

    /// <summary>Its number in the ack inbox (the last token of <see cref="ReplyTo"/>).</summary>
    public long Number { get; }

    /// <summary>The reply subject the publish is sent with.</summary>
    public string ReplyTo { get; }

    /// <summary>When it was registered (<see cref="TimeProvider.GetTimestamp"/>).</summary>
    public long Started { get; }

    /// <summary>
    /// The stream's ack: the stored seq, or the original seq of a duplicate. Throws when the stream refuses the
    /// message, answers nothing within <c>PublishTimeout</c> of the start, or <paramref name="cancellationToken"/>
    /// fires. Call once.
    /// </summary>
    public ValueTask<PublishResult> CompleteAsync(CancellationToken cancellationToken)
    {
        if (Volatile.Read(ref _answered) == 0 && cancellationToken.CanBeCanceled)
        {
            // Runs at once if the token is already cancelled.
            _cancellation = cancellationToken.UnsafeRegister(
                static (state, token) =>
                {
                    var pending = (PendingPublish)state!;
                    pending._inbox.Forget(pending);
                    pending.Answer(PubAck.Failure(new OperationCanceledException(token)));
                },
                this);
        }

        return new ValueTask<PublishResult>(this, _core.Version);
    }

    /// <summary>Completes it with the ack (or the failure); only the first answer counts.</summary>
    internal void Answer(PubAck ack)
    {
        if (Interlocked.Exchange(ref _answered, 1) != 0)
        {
            return;
        }

        if (ack.Error is { } error)
        {
            _core.SetException(error);
        }
        else
        {
            _core.SetResult(new PublishResult(ack.Seq, ack.Duplicate));
        }
    }

    PublishResult IValueTaskSource<PublishResult>.GetResult(short token)
    {
        _cancellation.Unregister();
        return _core.GetResult(token);
    }

    ValueTaskSourceStatus IValueTaskSource<PublishResult>.GetStatus(short token) => _core.GetStatus(token);

    void IValueTaskSource<PublishResult>.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
        _core.OnCompleted(continuation, state, token, flags);
}
