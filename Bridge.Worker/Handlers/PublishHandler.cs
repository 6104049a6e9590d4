using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary>
/// Any application type with a room: stored in the room's subject and answered with <c>ack {id, seq}</c>.
/// Publishes of one connection are stored in the order they were sent (one at a time).
/// </summary>
internal sealed partial class PublishHandler(RoomPublisher publisher, ILogger<PublishHandler> logger)
{
    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (RoomFrames.RequireRoom(session, frame) is not { } room)
        {
            return;
        }

        if (frame.Id is not null && !MessageId.IsValid(frame.Id))
        {
            session.SendError(ErrorCodes.InvalidId, $"id must be 1-{MessageId.MaxLength} printable ASCII characters without spaces", null);
            return;
        }

        PublishResult result;
        try
        {
            result = await publisher.PublishAsync(room, frame.Type!, session.User, frame.Id, frame.PayloadKind, frame.Payload, cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            LogPublishFailed(ex, session.ConnectionId, room);
            session.SendError(ErrorCodes.PublishFailed, "the message was not stored; retry with the same id", frame.Id);
            return;
        }

        session.Send(ControlFrames.Ack(room, frame.Id, result.Seq, result.Duplicate));
    }

    [LoggerMessage(EventId = 2201, Level = LogLevel.Warning, Message = "Publish from connection {ConnectionId} to {Room} failed")]
    private partial void LogPublishFailed(Exception exception, string connectionId, string room);
}
