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
    public ValueTask<PublishResult> CompleteAsync() =>
        // Pipelined acks are often in by the time they are read: then no state machine is needed.
        ack.IsCompletedSuccessfully ? new ValueTask<PublishResult>(Read(ack.Result)) : AwaitAsync(ack);

    private static async ValueTask<PublishResult> AwaitAsync(ValueTask<PubAckResponse> ack) => Read(await ack);

    private static PublishResult Read(PubAckResponse response) =>
        // Not EnsureSuccess(): it throws on duplicates, which are a success here (the retry is answered with the original seq).
        response.Error is { } error ? throw new NatsJSApiException(error) : new PublishResult(response.Seq, response.Duplicate);
}
