using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;
using Bridge.Worker.Publishing;

namespace Bridge.Worker.Handlers;

/// <summary>
/// Any application type with a room: published by <see cref="PublishService"/> (the rules every edge shares) and
/// answered with <c>ack {id, seq}</c> or an <c>error</c> frame. A connection's publishes are written to NATS one after
/// another, in the order sent (so stored in that order), and their acks awaited beside the receive loop
/// (<see cref="PublishPipeline"/>), up to <c>MaxPublishesInFlight</c> at once.
/// </summary>
internal sealed partial class PublishHandler(PublishService publishing, TimeProvider time, ILogger<PublishHandler> logger, ILogger<PublishPipeline> pipelineLogger)
{
    // One delegate for every connection's pipeline (made by the first publish).
    private Action<ClientSession, PublishInFlight, AwaitedAck, CancellationToken>? _answer;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (PublishService.Admit(frame, frame.Room, session.Identity) is { } refused)
        {
            // A refused frame's id is named only if it is a valid one (a forbidden frame's always is).
            session.SendError(
                refused.Code, refused.Message, frame.Id is not null && MessageId.IsValid(frame.Id) ? frame.Id : null,
                RoomName.IsValid(frame.Room) ? frame.Room : null);
            return;
        }

        // A live join of this room by this connection whose seam is not taken yet: the publish waits for it (at most
        // SessionRooms.MaxSeamWait, on the receive loop), or it could be stored before the seam and be neither replayed nor
        // delivered live to its sender (docs/protocol.md §4, room.join).
        if (await session.Rooms.WhenSeamTakenAsync(frame.Room!, time, session.Closing, cancellationToken))
        {
            LogSeamWaitEnded(logger, session.ConnectionId, frame.Room!, SessionRooms.MaxSeamWait);
        }

        // Backpressure: with MaxPublishesInFlight acks outstanding, the receive loop waits here.
        var pipeline = session.Publishes(_answer ??= Answer, pipelineLogger);
        if (!await pipeline.WaitForPlaceAsync(cancellationToken))
        {
            return; // closing: frames that arrive now are not acted on
        }

        // The ack is awaited until the connection closes: then nobody is left to answer.
        var pending = publishing.Start(frame, frame.Room!, session.User, session.Transport.Label(), session.Closing);
        await pipeline.AddAsync(new PublishInFlight(pending, frame.Room!, frame.Id));
    }

    /// <summary>Answers a publish once its ack was awaited: <c>ack</c>, or <c>publish_failed</c>; nothing once the connection is closing.</summary>
    internal void Answer(ClientSession session, PublishInFlight publish, AwaitedAck awaited, CancellationToken closing)
    {
        try
        {
            var outcome = publishing.Conclude(awaited, publish.Room, session.ConnectionId, closing);
            if (outcome.Status == PublishStatus.Stored)
            {
                session.SendAck(publish.Room, publish.Id, outcome.Seq, outcome.Duplicate);
            }
            else
            {
                session.SendError(outcome.Code, outcome.Message, publish.Id, publish.Room);
            }
        }
        catch (OperationCanceledException)
        {
            // Closing: nothing more is sent; the client retries with the same id after reconnecting.
        }
    }

    [LoggerMessage(EventId = 2203, Level = LogLevel.Debug, Message = "A publish from connection {ConnectionId} to {Room} waited {Waited} for the connection's join of the room to take its seam; published without it")]
    private static partial void LogSeamWaitEnded(ILogger logger, string connectionId, string room, TimeSpan waited);
}
