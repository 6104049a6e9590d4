using Bridge.Contracts;
using Bridge.Worker.Protocol;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

internal readonly record struct PublishResult(ulong Seq, bool Duplicate);

/// <summary>
/// Stores a message in its room's subject, exactly as a backend would publish it. Publishes are pipelined through
/// NATS.Net's <c>PublishConcurrentAsync</c>: one is written to the NATS connection and its ack awaited later
/// (<see cref="PendingPublish"/>), so the next can go out meanwhile.
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
        // Sized for the headers it gets (NATS.Net adds Nats-Msg-Id for an id), so the dictionary never grows.
        var headers = new NatsHeaders(id is null ? 3 : 5)
        {
            [NatsSubjects.TypeHeader] = type,
            [NatsSubjects.FromHeader] = from,
            [NatsSubjects.ContentTypeHeader] = kind == PayloadKind.Binary ? NatsSubjects.BinaryContentType : NatsSubjects.JsonContentType,
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
