using Bridge.Client.Protocol;
using Bridge.Contracts;
using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// Hands each frame from the server to the owner it concerns: <c>welcome</c> to the connection, <c>room.joined</c>
/// and room messages to the <see cref="RoomTable"/> and the room's feed, <c>ack</c> to the <see cref="Outbox"/>,
/// answers to the connection's <see cref="RequestTracker"/>, and each <c>error</c> to whichever sent its <c>ref</c>.
/// </summary>
internal sealed class FrameDispatcher(RoomTable rooms, Outbox outbox, ILogger logger)
{
    private readonly Action<Exception> _joinedHandlerFailed = ex => logger.HandlerFailed(nameof(RoomSubscription.Joined), ex);

    public ValueTask DispatchAsync(Connection connection, Envelope envelope)
    {
        switch (envelope.Type)
        {
            case MessageTypes.Welcome:
                connection.OnWelcome(new WelcomeInfo(
                    envelope.PayloadString("serverId"), envelope.PayloadString("connectionId"), envelope.PayloadString("user"),
                    Limit(envelope.PayloadInt64("maxFrameBytes")), Limit(envelope.PayloadInt64("maxRoomsPerConnection")),
                    Limit(envelope.PayloadInt64("framesPerSecond")), Limit(envelope.PayloadInt64("frameBurst"))));
                break;
            case MessageTypes.RoomJoined:
                OnJoined(envelope);
                break;
            case MessageTypes.RoomLeft:
                OnLeft(connection, envelope);
                break;
            case MessageTypes.RoomState when envelope.Room is not null:
                connection.Requests.CompleteOldest(RequestKind.Sync, envelope.Room, envelope);
                break;
            case MessageTypes.PresenceState:
            case MessageTypes.AuthRefreshed:
                connection.Requests.Complete(envelope.Id, envelope);
                break;
            case MessageTypes.Ack:
                outbox.TryAck(envelope.Id, envelope.Seq ?? 0, envelope.PayloadBool("duplicate"));
                break;
            case MessageTypes.Error:
                OnError(connection, envelope);
                break;
            case MessageTypes.Pong:
                // Its arrival is all it says: any frame ends the socket's silence, which the watchdog measures.
                break;
            default:
                // A room message (of a room held, or of a room a held pattern matches); server.* and whatever a
                // newer server adds are ignored.
                if (envelope.Room is { } room && envelope.Seq is { } seq && rooms.FindFor(room) is { } subscription)
                {
                    return subscription.Feed.DeliverAsync(seq, envelope.ToMessage, connection.Token);
                }

                break;
        }

        return ValueTask.CompletedTask;
    }

    private void OnJoined(Envelope envelope)
    {
        if (envelope.Room is null || envelope.Seq is not { } seq)
        {
            return;
        }

        var replayed = (int)Math.Clamp(envelope.PayloadInt64("replayed") ?? 0, 0, int.MaxValue);
        var latest = (int)Math.Clamp(envelope.PayloadInt64("latest") ?? 0, 0, int.MaxValue);
        var info = new RoomJoinInfo(envelope.Room, seq, replayed, envelope.PayloadBool("truncated")) { Latest = latest };
        rooms.OnJoined(info)?.OnJoined(info, _joinedHandlerFailed);
    }

    private void OnLeft(Connection connection, Envelope envelope)
    {
        if (envelope.Room is null)
        {
            return;
        }

        // The answer to our room.leave, or the server leaving the room for us (§1.1: a refreshed token no longer grants it).
        if (!connection.Requests.CompleteOldest(RequestKind.Leave, envelope.Room, envelope))
        {
            rooms.RemovedByServer(envelope.Room, envelope.PayloadString("reason") ?? "left");
        }
    }

    private void OnError(Connection connection, Envelope envelope)
    {
        if (envelope.PayloadString("ref") is not { } reference)
        {
            return;
        }

        var error = new BridgeException(envelope.PayloadString("code") ?? "error", envelope.PayloadString("message") ?? "", reference);
        _ = outbox.TryFail(reference, error) || rooms.TryFailJoin(reference, envelope.Room, error) || connection.Requests.TryFail(reference, error);
    }

    /// <summary>A limit <c>welcome</c> announces: a positive number, or null (absent, or not one a worker sends).</summary>
    private static int? Limit(long? value) => value is >= 1 and <= int.MaxValue ? (int)value : null;
}
