using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

/// <summary>A publish written to NATS whose stream ack has not been read yet: NATS.Net's <c>PublishAsync</c>, still running.</summary>
internal readonly struct PendingPublish(ValueTask<PubAckResponse> ack)
{
    /// <summary>
    /// The stream's ack: the stored seq, or the original seq of a duplicate. Throws when the stream refuses the
    /// message, answers nothing within <c>PublishTimeout</c>, or the token the publish was started with fires. Call
    /// once (or await <see cref="Ack"/> once instead).
    /// </summary>
    public ValueTask<PublishResult> CompleteAsync() =>
        // Pipelined acks are often in by the time they are read: then no state machine is needed.
        ack.IsCompletedSuccessfully ? new ValueTask<PublishResult>(Read(ack.Result)) : AwaitAsync(ack);

    /// <summary>
    /// NATS.Net's ack itself, for a caller that awaits it in its own loop (one state machine for all its publishes,
    /// none per publish: a connection's pipeline) and reads it with <see cref="Read"/>. Throws as <see cref="CompleteAsync"/>.
    /// </summary>
    public ValueTask<PubAckResponse> Ack => ack;

    /// <summary>Awaits <see cref="Ack"/>; never throws: a failure is handed back, to be read by <c>PublishService.Conclude</c>.</summary>
    public async ValueTask<AwaitedAck> SettleAsync()
    {
        try
        {
            return new AwaitedAck(await ack, null);
        }
        catch (Exception ex)
        {
            return new AwaitedAck(null, ex);
        }
    }

    /// <summary>The stored seq (or a duplicate's original) of an ack; throws <see cref="NatsJSApiException"/> when the stream refused the message.</summary>
    public static PublishResult Read(PubAckResponse response) =>
        // Not EnsureSuccess(): it throws on duplicates, which are a success here (the retry is answered with the original seq).
        response.Error is { } error ? throw new NatsJSApiException(error) : new PublishResult(response.Seq, response.Duplicate);

    private static async ValueTask<PublishResult> AwaitAsync(ValueTask<PubAckResponse> ack) => Read(await ack);
}

/// <summary>A publish's ack once awaited (<see cref="PendingPublish.Ack"/>): the stream's response, or what the wait threw.</summary>
internal readonly record struct AwaitedAck(PubAckResponse? Response, Exception? Failure);
