using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

/// <summary>A publish written to NATS whose stream ack has not been read yet: NATS.Net's <c>PublishAsync</c>, still running.</summary>
internal readonly struct PendingPublish(ValueTask<PubAckResponse> ack)
{
    /// <summary>
    /// The stream's ack: the stored seq, or the original seq of a duplicate. Throws when the stream refuses the
    /// message, answers nothing within <c>PublishTimeout</c>, or the token the publish was started with fires. Call once.
    /// </summary>
    public async ValueTask<PublishResult> CompleteAsync()
    {
        var response = await ack;
        // Not EnsureSuccess(): it throws on duplicates, which are a success here (the retry is answered with the original seq).
        if (response.Error is { } error)
        {
            throw new NatsJSApiException(error);
        }

        return new PublishResult(response.Seq, response.Duplicate);
    }
}
