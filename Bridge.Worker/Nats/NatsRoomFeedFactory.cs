using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

/// <summary>
/// A room's live feed is one core NATS subscription on the stream's republish subject for that room:
/// nearly free on the server (no consumer state), so a worker can hold tens of thousands.
/// Republished messages carry the room's previous sequence, so a skipped message (a drop in the client's
/// buffer, a reconnect) is seen at the next one and filled from the stream before anything later is delivered.
/// </summary>
internal sealed partial class NatsRoomFeedFactory(
    NatsContext nats, RoomHistory history, Operations.BridgeMetrics metrics, IOptions<NatsOptions> options, RoomMessageReader reader,
    ILogger<NatsRoomFeedFactory> logger)
    : IRoomFeedFactory
{
    public async ValueTask<IAsyncDisposable> OpenAsync(Room room, CancellationToken cancellationToken)
    {
        var subject = options.Value.LiveSubject(room.Name);
        var subscription = await nats.Connection.SubscribeCoreAsync<byte[]>(subject, cancellationToken: cancellationToken);
        try
        {
            // The seam: the server handles one connection's commands in order, so by the time it answers this
            // request (written after the SUB) the subscription is in place. Every message stored after the answer
            // comes live; everything up to it is the room's history. No extra PING round trip is needed.
            room.LastSeq = await history.GetLastSeqAsync(room.Name, cancellationToken);
        }
        catch
        {
            await subscription.DisposeAsync();
            throw;
        }

        return new Feed(this, room, subscription);
    }

    /// <summary>Delivers whatever the room stored that the live feed has not (after a reconnect).</summary>
    public async Task CatchUpAsync(Room room, CancellationToken cancellationToken)
    {
        await room.Gate.WaitAsync(cancellationToken);
        try
        {
            var last = await history.GetLastSeqAsync(room.Name, cancellationToken);
            if (last > room.LastSeq)
            {
                LogCatchUp(room.Name, room.LastSeq, last);
                await FillAsync(room, last, cancellationToken);
            }
        }
        finally
        {
            room.Gate.Release();
        }
    }

    private async Task PumpAsync(Room room, INatsSub<byte[]> subscription)
    {
        // Ends when the subscription is disposed (last member left, or shutdown).
        await foreach (var msg in subscription.Msgs.ReadAllAsync())
        {
            var message = reader.ReadStamped(room.Name, msg);
            if (message is null)
            {
                LogNotFromStream(msg.Subject);
                continue;
            }

            await room.Gate.WaitAsync();
            try
            {
                if (message.Seq <= room.LastSeq)
                {
                    continue; // already delivered by a fill
                }

                if (message.PreviousSeq > room.LastSeq)
                {
                    LogGap(room.Name, room.LastSeq, message.PreviousSeq);
                    metrics.GapFilled();
                    await FillAsync(room, message.PreviousSeq, CancellationToken.None);
                }

                room.LastSeq = message.Seq;
                room.Dispatch(message);
            }
            catch (Exception ex)
            {
                LogDispatchFailed(ex, room.Name);
            }
            finally
            {
                room.Gate.Release();
            }
        }
    }

    /// <summary>Dispatches the room's stored messages after its <see cref="Room.LastSeq"/> up to <paramref name="upTo"/>. Called under the room's gate.</summary>
    private async Task FillAsync(Room room, ulong upTo, CancellationToken cancellationToken)
    {
        await foreach (var stored in history.ReadAsync(room.Name, room.LastSeq, upTo, cancellationToken))
        {
            if (stored.Seq > room.LastSeq)
            {
                room.LastSeq = stored.Seq;
                room.Dispatch(stored);
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

    [LoggerMessage(EventId = 1203, Level = LogLevel.Information, Message = "Gap in room {Room}: delivered up to {LastSeq}, next follows {PreviousSeq}; filling from the stream")]
    private partial void LogGap(string room, ulong lastSeq, ulong previousSeq);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Information, Message = "Catching up room {Room} from {LastSeq} to {StoredSeq}")]
    private partial void LogCatchUp(string room, ulong lastSeq, ulong storedSeq);
}
