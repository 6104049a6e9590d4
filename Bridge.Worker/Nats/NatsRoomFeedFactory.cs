using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

/// <summary>
/// A room's live feed is one core NATS subscription on the stream's republish subject for that room:
/// nearly free on the server (no consumer state), so a worker can hold tens of thousands.
/// </summary>
internal sealed partial class NatsRoomFeedFactory(
    NatsContext nats, IOptions<NatsOptions> options, TimeProvider time, ILogger<NatsRoomFeedFactory> logger) : IRoomFeedFactory
{
    public async ValueTask<IAsyncDisposable> OpenAsync(Room room, CancellationToken cancellationToken)
    {
        var subject = options.Value.LiveSubject(room.Name);
        var subscription = await nats.Connection.SubscribeCoreAsync<byte[]>(subject, cancellationToken: cancellationToken);
        return new Feed(this, room, subscription);
    }

    private async Task PumpAsync(Room room, INatsSub<byte[]> subscription)
    {
        // Ends when the subscription is disposed (last member left, or shutdown).
        await foreach (var msg in subscription.Msgs.ReadAllAsync())
        {
            try
            {
                var message = RoomMessageReader.ReadLive(room.Name, msg, time);
                if (message is null)
                {
                    LogNotFromStream(msg.Subject);
                    continue;
                }

                room.Dispatch(message);
            }
            catch (Exception ex)
            {
                LogDispatchFailed(ex, room.Name);
            }
        }
    }

    private sealed class Feed : IAsyncDisposable
    {
        private readonly INatsSub<byte[]> _subscription;
        private readonly Task _pump;

        public Feed(NatsRoomFeedFactory owner, Room room, INatsSub<byte[]> subscription)
        {
            _subscription = subscription;
            _pump = Task.Run(() => owner.PumpAsync(room, subscription));
        }

        public async ValueTask DisposeAsync()
        {
            await _subscription.DisposeAsync();
            await _pump;
        }
    }

    [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Ignored a message on {Subject} without stream headers")]
    private partial void LogNotFromStream(string subject);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Error, Message = "Dispatching a message of room {Room} failed")]
    private partial void LogDispatchFailed(Exception exception, string room);
}
