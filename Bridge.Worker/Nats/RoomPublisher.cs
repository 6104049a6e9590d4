using Bridge.Contracts;
using Bridge.Worker.Protocol;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

internal readonly record struct PublishResult(ulong Seq, bool Duplicate);

/// <summary>Stores a message in its room's subject, exactly as a backend would publish it.</summary>
internal sealed class RoomPublisher(NatsContext nats, IOptions<NatsOptions> options)
{
    public async ValueTask<PublishResult> PublishAsync(
        string room, string type, string from, string? id, PayloadKind kind, ReadOnlyMemory<byte> payload,
        CancellationToken cancellationToken)
    {
        var o = options.Value;
        var headers = new NatsHeaders
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

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(o.PublishTimeout);
        var ack = await nats.JetStream.PublishAsync(
            o.RoomSubject(room), payload, opts: pubOpts, headers: headers, cancellationToken: timeout.Token);
        // Not EnsureSuccess(): it throws on duplicates, which are a success here (the retry is answered with the original seq).
        if (ack.Error is { } error)
        {
            throw new NatsJSApiException(error);
        }

        return new PublishResult(ack.Seq, ack.Duplicate);
    }
}
