using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

/// <summary>
/// A room's live feed is one core NATS subscription on the stream's republish subject for that room:
/// nearly free on the server (no consumer state), so a worker can hold tens of thousands. Each stamped message is
/// handed to the room's <see cref="RoomSequence"/>, which fills gaps and dispatches.
/// </summary>
internal sealed partial class NatsRoomFeedFactory(
    NatsContext nats, IOptions<NatsOptions> options, RoomMessageReader reader, ILogger<NatsRoomFeedFactory> logger)
    : IRoomFeedFactory
{
    public async ValueTask<IAsyncDisposable> OpenAsync(Room room, CancellationToken cancellationToken)
    {
        var subject = options.Value.LiveSubject(room.Name);
        var subscription = await nats.Connection.SubscribeCoreAsync<byte[]>(subject, cancellationToken: cancellationToken);
        try
        {
            // The seam: the server handles one connection's commands in order, so by the time it answers the
            // sequence's request for the room's last seq (written after the SUB) the subscription is in place.
            // Every message stored after the answer comes live; everything up to it is the room's history.
            await room.Sequence.StartAsync(cancellationToken);
        }
        catch
        {
            await subscription.DisposeAsync();
            throw;
        }

        return new Feed(this, room, subscription);
    }

    private async Task PumpAsync(Room room, INatsSub<byte[]> subscription)
    {
        // Off the joiner's path at once (a message already waiting is not dispatched inside the join). Started without
        // Task.Run, and read without an async enumerator: per active room that saved ~300 B of the 3 KB the worker held
        // (docs/benchmarks.md, memory per active room).
        await Task.Yield();
        var msgs = subscription.Msgs;
        // Ends when the subscription is disposed (last member left, or shutdown).
        while (await msgs.WaitToReadAsync())
        {
            while (msgs.TryRead(out var msg))
            {
                var message = reader.ReadStamped(room.Name, msg);
                if (message is null)
                {
                    LogNotFromStream(msg.Subject);
                    continue;
                }

                try
                {
                    await room.Sequence.OnLiveAsync(message);
                }
                catch (Exception ex)
                {
                    // A failed gap fill: the room's next message shows the gap again and fills it.
                    LogDispatchFailed(ex, room.Name);
                }
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
            _pump = owner.PumpAsync(room, subscription);
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
