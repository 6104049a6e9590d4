using Bridge.Contracts;
using Bridge.Worker.Nats;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using NATS.Client.JetStream;

namespace Bridge.Worker.Publishing;

/// <summary>How a publish ended: stored, or refused before it was written, or written and not stored.</summary>
internal enum PublishStatus
{
    /// <summary>Stored (or a retry of a stored id: <see cref="PublishOutcome.Duplicate"/>); <see cref="PublishOutcome.Seq"/> is its seq.</summary>
    Stored,

    /// <summary>Refused by the publish rules (type, room name, id); nothing was written.</summary>
    Invalid,

    /// <summary>The caller's token does not grant publishing to the room; nothing was written.</summary>
    Forbidden,

    /// <summary>Written, but the stream did not store it (refused, no answer within <c>PublishTimeout</c>): retry with the same id.</summary>
    Failed,
}

/// <summary>
/// The outcome of a publish, which each edge maps to its own answer: an <c>ack</c> or <c>error</c> frame on a
/// connection, a status code over HTTP, an <c>ApiException</c> in the backend API. <see cref="Code"/> and
/// <see cref="Message"/> are the error code and text of every status but <see cref="PublishStatus.Stored"/>.
/// </summary>
internal readonly record struct PublishOutcome(PublishStatus Status, ulong Seq, bool Duplicate, string Code, string Message)
{
    public static PublishOutcome Stored(PublishResult result) => new(PublishStatus.Stored, result.Seq, result.Duplicate, "", "");

    public static PublishOutcome Refused(PublishStatus status, string code, string message) => new(status, 0, false, code, message);
}

/// <summary>
/// The one place for the publish rules, whatever the edge (a connection's frame, <c>POST /api/rooms/{room}/messages</c>,
/// the backend API): the checks of type, room and id, the grant check, and the store, where JetStream de-duplicates by
/// id (<see cref="RoomPublisher"/>). Rate limits stay with the edges, which charge every request, not only publishes
/// (a connection's frames, an API caller's requests).
/// </summary>
internal sealed partial class PublishService(RoomPublisher publisher, BridgeMetrics metrics, ILogger<PublishService> logger)
{
    /// <summary>The text of <see cref="PublishStatus.Failed"/>.</summary>
    public const string NotStoredMessage = "the message was not stored; retry with the same id";

    /// <summary>Why a message may not be published to <paramref name="room"/> (<see cref="PublishStatus.Invalid"/>), or null.</summary>
    public static PublishOutcome? Check(string? type, string? room, string? id)
    {
        if (type is null)
        {
            return Invalid(ErrorCodes.MissingField, "field 'type' is required");
        }

        if (!MessageTypes.IsValid(type))
        {
            return Invalid(ErrorCodes.InvalidType, $"type must be 1-{MessageTypes.MaxLength} characters of dot-separated [A-Za-z0-9_-] tokens");
        }

        if (MessageTypes.IsReserved(type))
        {
            // Reserved types are matched ignoring ASCII case: say so when only the case makes it reserved (ROOM.JOIN,
            // Welcome), not for room.Bogus, reserved in any case. What matched is the first token (a reserved prefix
            // ends with its first '.', and a reserved name has none).
            var dot = type.IndexOf('.', StringComparison.Ordinal);
            return Invalid(ErrorCodes.UnknownType, type.AsSpan(0, dot < 0 ? type.Length : dot).ContainsAnyInRange('A', 'Z')
                ? $"'{type}' is reserved for the gateway and not a client message type (reserved types are matched ignoring case; gateway types are lowercase)"
                : $"'{type}' is reserved for the gateway and not a client message type");
        }

        if (RoomField.Check(room) is { } refused)
        {
            return Invalid(refused.Code, refused.Message);
        }

        if (id is not null && !MessageId.IsValid(id))
        {
            return Invalid(ErrorCodes.InvalidId, $"id must be 1-{MessageId.MaxLength} printable ASCII characters without spaces");
        }

        return null;
    }

    /// <summary>
    /// The checks of <see cref="Check"/>, then the grant: null when <paramref name="identity"/> may publish
    /// <paramref name="frame"/> to <paramref name="room"/>, else <see cref="PublishStatus.Invalid"/> or <see cref="PublishStatus.Forbidden"/>.
    /// </summary>
    public static PublishOutcome? Admit(InboundFrame frame, string? room, UserIdentity identity)
    {
        ArgumentNullException.ThrowIfNull(frame);
        ArgumentNullException.ThrowIfNull(identity);
        if (Check(frame.Type, room, frame.Id) is { } refused)
        {
            return refused;
        }

        return identity.MayPublish(room!)
            ? null
            : PublishOutcome.Refused(PublishStatus.Forbidden, ErrorCodes.Forbidden, $"the token does not grant publishing to '{room}'");
    }

    /// <summary>
    /// Writes an admitted message (<see cref="Admit"/>, or <see cref="Check"/> for a trusted backend) to the room's
    /// subject and returns its pending ack, awaited with <see cref="CompleteAsync"/>. Messages started one after
    /// another are stored in that order. <paramref name="cancellationToken"/> also ends the wait for the ack.
    /// </summary>
    public PendingPublish Start(InboundFrame frame, string room, string from, string transport, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(frame);
        metrics.MessageIn(transport);
        return publisher.Start(room, frame.Type!, from, frame.Id, frame.PayloadKind, frame.Payload, cancellationToken);
    }

    /// <summary>
    /// Waits for a started publish's ack: <see cref="PublishStatus.Stored"/>, or <see cref="PublishStatus.Failed"/>
    /// (logged, naming <paramref name="source"/>: a connection id, a request's trace id). Throws only
    /// <see cref="OperationCanceledException"/>, when the publish's token was cancelled: nobody is left to answer.
    /// </summary>
    public async ValueTask<PublishOutcome> CompleteAsync(PendingPublish pending, string room, string source, CancellationToken cancellationToken) =>
        Conclude(await pending.SettleAsync(), room, source, cancellationToken);

    /// <summary>
    /// The outcome of an ack the caller awaited itself (<see cref="PendingPublish.Ack"/>, a connection's pipeline), as
    /// <see cref="CompleteAsync"/> gives it: <see cref="PublishStatus.Stored"/> or <see cref="PublishStatus.Failed"/>
    /// (logged); throws only <see cref="OperationCanceledException"/>, when <paramref name="cancellationToken"/> (the
    /// publish's) was cancelled.
    /// </summary>
    public PublishOutcome Conclude(AwaitedAck awaited, string room, string source, CancellationToken cancellationToken)
    {
        var failure = awaited.Failure;
        if (failure is null)
        {
            try
            {
                return PublishOutcome.Stored(PendingPublish.Read(awaited.Response!));
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // The stream refused it (NatsJSApiException), or the ack could not be read: not stored either way.
                failure = ex;
            }
        }

        if (!cancellationToken.IsCancellationRequested)
        {
            LogPublishFailed(failure, source, room);
            return PublishOutcome.Refused(PublishStatus.Failed, ErrorCodes.PublishFailed, NotStoredMessage);
        }

        throw failure as OperationCanceledException ?? new OperationCanceledException("the publish was cancelled", failure, cancellationToken);
    }

    /// <summary>
    /// One publish from start to outcome (HTTP and the backend API): <see cref="Admit"/> when
    /// <paramref name="identity"/> is given (a trusted backend's message was checked where it entered), then the store
    /// and its ack. Throws only <see cref="OperationCanceledException"/>, as <see cref="CompleteAsync"/>.
    /// </summary>
    public async ValueTask<PublishOutcome> PublishAsync(
        InboundFrame frame, string room, UserIdentity? identity, string from, string transport, string source, CancellationToken cancellationToken)
    {
        if (identity is not null && Admit(frame, room, identity) is { } refused)
        {
            return refused;
        }

        return await CompleteAsync(Start(frame, room, from, transport, cancellationToken), room, source, cancellationToken);
    }

    private static PublishOutcome Invalid(string code, string message) => PublishOutcome.Refused(PublishStatus.Invalid, code, message);

    [LoggerMessage(EventId = 2201, Level = LogLevel.Warning, Message = "Publish from {Source} to {Room} failed")]
    private partial void LogPublishFailed(Exception exception, string source, string room);
}
