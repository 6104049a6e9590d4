using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

/// <summary>A publish written to NATS whose stream ack has not been read yet (NATS.Net's concurrent publish future).</summary>
internal sealed class PendingPublish(NatsJSPublishConcurrentFuture future, TimeProvider time, long started, TimeSpan timeout)
{
    /// <summary>
    /// The stream's ack: the stored seq, or the original seq of a duplicate. Throws when the stream refuses the
    /// message, answers nothing within <c>PublishTimeout</c> of the start, or <paramref name="cancellationToken"/>
    /// fires. Releases the ack's subscription either way; call once.
    /// </summary>
    public async ValueTask<PublishResult> CompleteAsync(CancellationToken cancellationToken)
    {
        try
        {
            var left = timeout - time.GetElapsedTime(started);
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            // An ack already here is read even when the time is up (the token is not yet cancelled at the read).
            deadline.CancelAfter(left > TimeSpan.Zero ? left : TimeSpan.FromMilliseconds(1));
            var ack = await future.GetResponseAsync(deadline.Token);
            // Not EnsureSuccess(): it throws on duplicates, which are a success here (the retry is answered with the original seq).
            if (ack.Error is { } error)
            {
                throw new NatsJSApiException(error);
            }

            return new PublishResult(ack.Seq, ack.Duplicate);
        }
        finally
        {
            await future.DisposeAsync();
        }
    }
}
