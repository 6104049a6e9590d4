using Bridge.Contracts;
using Bridge.Worker.Protocol;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

internal readonly record struct PublishResult(ulong Seq, bool Duplicate);

/// <summary>
/// Stores a message in its room's subject, exactly as a backend would publish it. Publishes are pipelined: one is
/// written to the NATS connection and its ack awaited later (<see cref="AckInbox"/>), so the next can go out meanwhile.
/// </summary>
internal sealed class RoomPublisher(NatsContext nats, AckInbox acks, IOptions<NatsOptions> options)
{
    /// <summary>
    /// Writes the publish to the worker's NATS connection and returns its pending ack. Publishes started one after
    /// another are stored in that order (one connection, one stream). Throws when it cannot be written.
    /// </summary>
    public async ValueTask<PendingPublish> StartAsync(
        string room, string type, string from, string? id, PayloadKind kind, ReadOnlyMemory<byte> payload,
        CancellationToken cancellationToken)
    {
        // Sized for the four headers a publish with an id has, so the dictionary never grows.
        var headers = new NatsHeaders(4)
        {
            [NatsSubjects.TypeHeader] = type,
            [NatsSubjects.FromHeader] = from,
            [NatsSubjects.ContentTypeHeader] = kind == PayloadKind.Binary ? NatsSubjects.BinaryContentType : NatsSubjects.JsonContentType,
        };
        if (id is not null)
        {
            headers[NatsSubjects.IdHeader] = id;
            // JetStream de-duplicates across the whole stream; scoping the id by room and sender means only a
            // retry of the same sender to the same room can collide with an earlier publish.
            headers[NatsSubjects.MsgIdHeader] = $"{room}/{from}/{id}";
        }

        var pending = await acks.RegisterAsync(cancellationToken);
        try
        {
            // The payload and headers are copied into the connection's buffer before this returns: the caller may
            // reuse its memory. The reply subject is the ack inbox's: the stream answers there.
            await nats.Connection.PublishAsync(options.Value.RoomSubject(room), payload, headers, pending.ReplyTo, cancellationToken: cancellationToken);
        }
        catch (Exception)
        {
            acks.Forget(pending);
            throw;
        }

        return pending;
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
