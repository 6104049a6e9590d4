using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary>
/// Any application type with a room: stored in the room's subject and answered with <c>ack {id, seq}</c>.
/// A connection's publishes are written to NATS one after another, in the order sent (so stored in that order), and
/// their acks awaited beside the receive loop (<see cref="PublishPipeline"/>), up to
/// <c>MaxPublishesInFlight</c> at once. The same checks apply to <c>POST /api/rooms/{room}/messages</c>.
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

        // Backpressure: with MaxPublishesInFlight acks outstanding, the receive loop waits here.
        var pipeline = session.Publishes;
        if (!await pipeline.WaitForPlaceAsync(cancellationToken))
        {
            return; // closing: frames that arrive now are not acted on
        }

        var room = frame.Room!;
        var id = frame.Id;
        PendingPublish pending;
        try
        {
            metrics.MessageIn(session.Transport.Label());
            pending = await publisher.StartAsync(room, frame.Type!, session.User, id, frame.PayloadKind, frame.Payload, cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            FailPublish(session, ex, room, id);
            return;
        }

        await pipeline.AddAsync(async closing =>
        {
            try
            {
                var result = await pending.CompleteAsync(closing);
                session.Send(ControlFrames.Ack(room, id, result.Seq, result.Duplicate));
            }
            catch (Exception ex) when (!closing.IsCancellationRequested)
            {
                FailPublish(session, ex, room, id);
            }
            catch (Exception)
            {
                // Closing: nothing more is sent; the client retries with the same id after reconnecting.
            }
        });
    }

    private void FailPublish(ClientSession session, Exception ex, string room, string? id)
    {
        LogPublishFailed(ex, session.ConnectionId, room);
        session.SendError(ErrorCodes.PublishFailed, "the message was not stored; retry with the same id", id);
    }

    [LoggerMessage(EventId = 2201, Level = LogLevel.Warning, Message = "Publish from {ConnectionId} to {Room} failed")]
    public partial void LogPublishFailed(Exception exception, string connectionId, string room);
}
