using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary>
/// Any application type with a room: stored in the room's subject and answered with <c>ack {id, seq}</c>.
/// Publishes of one connection are stored in the order they were sent (one at a time). The same rules apply to
/// <c>POST /api/rooms/{room}/messages</c>.
/// </summary>
internal sealed partial class PublishHandler(RoomPublisher publisher, Operations.BridgeMetrics metrics, ILogger<PublishHandler> logger)
{
    /// <summary>Why a publish is refused (code and message), or null when it may be stored.</summary>
    public static (string Code, string Message)? Check(InboundFrame frame)
    {
        if (frame.Type is null)
        {
            return (ErrorCodes.MissingField, "field 'type' is required");
        }

        if (!MessageTypes.IsValid(frame.Type))
        {
            return (ErrorCodes.InvalidType, $"type must be 1-{MessageTypes.MaxLength} characters of dot-separated [A-Za-z0-9_-] tokens");
        }

        if (MessageTypes.IsReserved(frame.Type))
        {
            return (ErrorCodes.UnknownType, $"'{frame.Type}' is reserved for the gateway and not a client message type");
        }

        if (RoomFrames.CheckRoom(frame.Room) is { } refused)
        {
            return refused;
        }

        if (frame.Id is not null && !MessageId.IsValid(frame.Id))
        {
            return (ErrorCodes.InvalidId, $"id must be 1-{MessageId.MaxLength} printable ASCII characters without spaces");
        }

        return null;
    }

    /// <summary>Stores a checked frame.</summary>
    public ValueTask<PublishResult> PublishAsync(InboundFrame frame, string from, string transport, CancellationToken cancellationToken)
    {
        metrics.MessageIn(transport);
        return publisher.PublishAsync(frame.Room!, frame.Type!, from, frame.Id, frame.PayloadKind, frame.Payload, cancellationToken);
    }

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (Check(frame) is { } refused)
        {
            session.SendError(refused.Code, refused.Message, frame.Id is not null && MessageId.IsValid(frame.Id) ? frame.Id : null);
            return;
        }

        if (!session.Identity.MayPublish(frame.Room!))
        {
            session.SendError(ErrorCodes.Forbidden, $"the token does not grant publishing to '{frame.Room}'", frame.Id);
            return;
        }

        PublishResult result;
        try
        {
            result = await PublishAsync(frame, session.User, session.Transport, cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            LogPublishFailed(ex, session.ConnectionId, frame.Room!);
            session.SendError(ErrorCodes.PublishFailed, "the message was not stored; retry with the same id", frame.Id);
            return;
        }

        session.Send(ControlFrames.Ack(frame.Room!, frame.Id, result.Seq, result.Duplicate));
    }

    [LoggerMessage(EventId = 2201, Level = LogLevel.Warning, Message = "Publish from {ConnectionId} to {Room} failed")]
    public partial void LogPublishFailed(Exception exception, string connectionId, string room);
}
