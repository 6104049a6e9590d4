using Bridge.Contracts;
using Bridge.Worker.Protocol;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

internal readonly record struct PublishResult(ulong Seq, bool Duplicate);

/// <summary>
/// Stores a message in its room's subject, exactly as a backend would publish it. Publishes are pipelined: one is
/// written to the NATS connection and its ack awaited later, so the next can go out meanwhile.
/// </summary>
internal sealed class RoomPublisher(NatsContext nats, IOptions<NatsOptions> options, TimeProvider time)
{
    /// <summary>
    /// Writes the publish to the worker's NATS connection and returns its pending ack. Publishes started one after
    /// another are stored in that order (one connection, one stream). Throws when it cannot be written.
    /// </summary>
    public async ValueTask<PendingPublish> StartAsync(
        string room, string type, string from, string? id, PayloadKind kind, ReadOnlyMemory<byte> payload,
        CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (kind == PayloadKind.MessagePack && o.StoreMessagePackAsJson)
        {
            // The older storage, for backends that read only JSON from the stream: checked at the edge, so it converts.
            payload = PayloadTranscoder.MessagePackToJson(payload);
            kind = PayloadKind.Json;
        }

        var headers = new NatsHeaders
        {
            [NatsSubjects.TypeHeader] = type,
            [NatsSubjects.FromHeader] = from,
            [NatsSubjects.ContentTypeHeader] = RoomMessageReader.ContentTypeOf(kind),
        };
        NatsJSPubOpts? pubOpts = null;
        if (id is not null)
        {
            headers[NatsSubjects.IdHeader] = id;
            // JetStream de-duplicates across the whole stream; scoping the id by room and sender means only a
            // retry of the same sender to the same room can collide with an earlier publish.
            pubOpts = new NatsJSPubOpts { MsgId = $"{room}/{from}/{id}" };
        }

        var started = time.GetTimestamp();
        // The payload is copied into the connection's buffer before this returns: the caller may reuse its memory.
        var future = await nats.JetStream.PublishConcurrentAsync(
            o.RoomSubject(room), payload, opts: pubOpts, headers: headers, cancellationToken: cancellationToken);
        return new PendingPublish(future, time, started, o.PublishTimeout);
    }

    /// <summary>Stores one message and waits for its ack (HTTP publish).</summary>
    public async ValueTask<PublishResult> PublishAsync(
        string room, string type, string from, string? id, PayloadKind kind, ReadOnlyMemory<byte> payload,
        CancellationToken cancellationToken)
    {
        var pending = await StartAsync(room, type, from, id, kind, payload, cancellationToken);
        return await pending.CompleteAsync(cancellationToken);
    }
}

/// <summary>A publish written to NATS whose stream ack has not been read yet.</summary>
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
