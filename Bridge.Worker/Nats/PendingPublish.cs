using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

/// <summary>
/// A publish written to NATS whose stream ack has not been read yet: NATS.Net's <c>PublishAsync</c>, still running,
/// with its deadline (<see cref="RoomPublisher.Start"/>: cancelled after <c>PublishTimeout</c> or with the caller's
/// token, released once the ack is read).
/// </summary>
internal readonly struct PendingPublish(ValueTask<PubAckResponse> ack, CancellationTokenSource? deadline, CancellationToken cancellationToken)
{
    /// <summary>A pending publish without a deadline of its own (one the caller made, e.g. already completed).</summary>
    public PendingPublish(ValueTask<PubAckResponse> ack)
        : this(ack, null, CancellationToken.None)
    {
    }

    /// <summary>
    /// The stream's ack: the stored seq, or the original seq of a duplicate. Throws when the stream refuses the
    /// message, a <see cref="TimeoutException"/> when the publish did not end within <c>PublishTimeout</c> (written
    /// or not), and <see cref="OperationCanceledException"/> when the token the publish was started with fires. Call
    /// once (or await <see cref="Ack"/> once instead).
    /// </summary>
    public ValueTask<PublishResult> CompleteAsync()
    {
        // Pipelined acks are often in by the time they are read: then no state machine is needed.
        if (ack.IsCompletedSuccessfully)
        {
            Release();
            return new ValueTask<PublishResult>(Read(ack.Result));
        }

        return AwaitAsync(this);
    }

    /// <summary>
    /// NATS.Net's ack itself, for a caller that awaits it in its own loop (one state machine for all its publishes,
    /// none per publish: a connection's pipeline) and then calls <see cref="Settled(Exception)"/> (if it threw) and
    /// <see cref="Release"/>, and reads it with <see cref="Read"/>. Throws as <see cref="CompleteAsync"/> once settled.
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
            return new AwaitedAck(null, Settled(ex));
        }
        finally
        {
            Release();
        }
    }

    /// <summary>
    /// What <see cref="Ack"/>'s <paramref name="failure"/> means: a <see cref="TimeoutException"/> when the deadline
    /// cancelled it (not the caller's token), else the failure itself.
    /// </summary>
    public Exception Settled(Exception failure) =>
        failure is OperationCanceledException && deadline is { IsCancellationRequested: true } && !cancellationToken.IsCancellationRequested
            ? new TimeoutException("the stream did not acknowledge the publish within PublishTimeout", failure)
            : failure;

    /// <summary>Releases the deadline (its timer and its registration on the caller's token) once the ack was read.</summary>
    public void Release() => deadline?.Dispose();

    /// <summary>The stored seq (or a duplicate's original) of an ack; throws <see cref="NatsJSApiException"/> when the stream refused the message.</summary>
    public static PublishResult Read(PubAckResponse response) =>
        // Not EnsureSuccess(): it throws on duplicates, which are a success here (the retry is answered with the original seq).
        response.Error is { } error ? throw new NatsJSApiException(error) : new PublishResult(response.Seq, response.Duplicate);

    private static async ValueTask<PublishResult> AwaitAsync(PendingPublish pending)
    {
        try
        {
            return Read(await pending.Ack);
        }
        catch (OperationCanceledException ex) when (pending.Settled(ex) is TimeoutException timeout)
        {
            throw timeout;
        }
        finally
        {
            pending.Release();
        }
    }
}

/// <summary>A publish's ack once awaited (<see cref="PendingPublish.Ack"/>): the stream's response, or what the wait threw.</summary>
internal readonly record struct AwaitedAck(PubAckResponse? Response, Exception? Failure);
