using Bridge.Contracts;
using Bridge.Worker.Protocol;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

internal readonly record struct PublishResult(ulong Seq, bool Duplicate);

/// <summary>
/// Stores a message in its room's subject, exactly as a backend would publish it, with NATS.Net's JetStream
/// <c>PublishAsync</c>. In NATS.Net's default request-reply mode (<c>Direct</c>) every ack comes to the connection's
/// one inbox subscription and is matched to its publish there, so a publish costs no subscription object of its own
/// (<c>PublishConcurrentAsync</c> builds one per publish: a third more of the worker's CPU per publish, measured in
/// docs/benchmarks.md, "Ingest"; a hand-rolled ack inbox measured no better than this). Publishes are pipelined: each
/// is written as it starts, its ack awaited later (<see cref="PendingPublish"/>).
/// </summary>
internal sealed class RoomPublisher
{
    private readonly NatsOptions _options;
    private readonly NatsJSContext _js;

    public RoomPublisher(NatsContext nats, IOptions<NatsOptions> options)
    {
        ArgumentNullException.ThrowIfNull(nats);
        _options = options.Value;
        // Its own context with no ack wait of its own: each publish's deadline (Start) bounds the whole publish instead.
        _js = new NatsJSContext(nats.Connection, new NatsJSOpts(nats.Connection.Opts, requestTimeout: Timeout.InfiniteTimeSpan));
    }

    /// <summary>
    /// Writes the publish to the worker's NATS connection and returns its pending ack. Publishes started one after
    /// another are stored in that order: NATS.Net writes a publish before its call returns, or, while another
    /// write holds the connection, queues it behind that write's lock, which hands over in arrival order (one
    /// connection, one stream). <paramref name="cancellationToken"/> ends the wait for the ack.
    /// </summary>
    /// <remarks>
    /// The publish, its write included, ends within <c>PublishTimeout</c> whatever NATS does (the ack then throws
    /// <see cref="TimeoutException"/>): NATS.Net's own ack wait starts only once the message is written, and the write
    /// can wait much longer than that, or for ever. A frozen server's unread bytes fill the connection's write buffer,
    /// and a write then waits for room up to NATS.Net's <c>CommandTimeout</c> (5 s) for the write lock and again for
    /// the flush; a write while NATS.Net reconnects waits for the reconnect, however long (a connection's publishes,
    /// awaited in order, were then never answered). One cancellation source per publish, its timer the deadline.
    /// </remarks>
    public PendingPublish Start(
        string room, string type, string from, string? id, PayloadKind kind, ReadOnlyMemory<byte> payload,
        CancellationToken cancellationToken)
    {
        if (kind == PayloadKind.MessagePack && _options.StoreMessagePackAsJson)
        {
            // The older storage, for backends that read only JSON from the stream: checked at the edge, so it converts.
            payload = PayloadTranscoder.MessagePackToJson(payload);
            kind = PayloadKind.Json;
        }

        // Sized for the headers it gets (NATS.Net adds Nats-Msg-Id for an id), so the dictionary never grows.
        var headers = new NatsHeaders(id is null ? 3 : 5)
        {
            [NatsSubjects.TypeHeader] = type,
            [NatsSubjects.FromHeader] = from,
            [NatsSubjects.ContentTypeHeader] = ContentTypes.Of(kind),
        };
        NatsJSPubOpts? pubOpts = null;
        if (id is not null)
        {
            headers[NatsSubjects.IdHeader] = id;
            // JetStream de-duplicates across the whole stream; scoping the id by room and sender means only a
            // retry of the same sender to the same room can collide with an earlier publish.
            pubOpts = new NatsJSPubOpts { MsgId = string.Concat([room, "/", from, "/", id]) };
        }

        // The payload is copied into the connection's buffer when the publish is written: callers hand over memory
        // they no longer change (a decoded frame's own array, a request body read whole).
        var deadline = cancellationToken.CanBeCanceled
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken)
            : new CancellationTokenSource();
        deadline.CancelAfter(_options.PublishTimeout);
        return new PendingPublish(
            _js.PublishAsync(_options.RoomSubject(room), payload, opts: pubOpts, headers: headers, cancellationToken: deadline.Token),
            deadline,
            cancellationToken);
    }

    /// <summary>Stores one of the gateway's own messages (presence) and waits for its ack.</summary>
    public ValueTask<PublishResult> PublishAsync(
        string room, string type, string from, string? id, PayloadKind kind, ReadOnlyMemory<byte> payload,
        CancellationToken cancellationToken) =>
        Start(room, type, from, id, kind, payload, cancellationToken).CompleteAsync();
}
