using System.Collections.Concurrent;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

/// <summary>
/// A room's live feed is one core NATS subscription on the stream's republish subject for that room:
/// nearly free on the server (no consumer state), so a worker can hold tens of thousands. A pattern's feed is one
/// subscription with its wildcards (<c>live.rooms.devices.site-3.&gt;</c>), whatever the number of rooms it matches.
/// Each stamped message is handed to the room's <see cref="RoomSequence"/>, which fills gaps and dispatches.
/// </summary>
internal sealed partial class NatsRoomFeedFactory : IRoomFeedFactory
{
    // Pattern feeds by subscription: a message their buffer drops is told to the pattern's sequence (it cannot see
    // the gap in its rooms' own chains, RoomSequence).
    private readonly ConcurrentDictionary<NatsSubBase, Room> _patterns = new(ReferenceEqualityComparer.Instance);
    private readonly NatsContext _nats;
    private readonly IOptions<NatsOptions> _options;
    private readonly RoomMessageReader _reader;
    private readonly ILogger<NatsRoomFeedFactory> _logger;

    public NatsRoomFeedFactory(NatsContext nats, IOptions<NatsOptions> options, RoomMessageReader reader, ILogger<NatsRoomFeedFactory> logger)
    {
        _nats = nats;
        _options = options;
        _reader = reader;
        _logger = logger;
        nats.Connection.MessageDropped += OnMessageDroppedAsync;
    }

    public async ValueTask<IAsyncDisposable> OpenAsync(Room room, CancellationToken cancellationToken)
    {
        var subject = _options.Value.LiveSubject(room.Name);
        var subscription = await _nats.Connection.SubscribeCoreAsync<byte[]>(subject, cancellationToken: cancellationToken);
        if (room.Pattern is not null && subscription is NatsSubBase sub)
        {
            _patterns[sub] = room;
        }

        try
        {
            // The seam: the server handles one connection's commands in order, so by the time it answers the
            // sequence's request for the room's last seq (written after the SUB) the subscription is in place.
            // Every message stored after the answer comes live; everything up to it is the room's history.
            await room.Sequence.StartAsync(cancellationToken);
        }
        catch
        {
            Forget(subscription);
            await subscription.DisposeAsync();
            throw;
        }

        return new Feed(this, room, subscription);
    }

    private void Forget(INatsSub<byte[]> subscription)
    {
        if (subscription is NatsSubBase sub)
        {
            _patterns.TryRemove(sub, out _);
        }
    }

    private ValueTask OnMessageDroppedAsync(object? sender, NatsMessageDroppedEventArgs args)
    {
        if (_patterns.TryGetValue(args.Subscription, out var room) && RoomMessageReader.SequenceOf(args.Headers) is > 0 and var seq)
        {
            room.Sequence.MarkDropped(seq);
        }

        return ValueTask.CompletedTask;
    }

    private async Task PumpAsync(Room room, INatsSub<byte[]> subscription)
    {
        // Off the joiner's path at once (a message already waiting is not dispatched inside the join). Started without
        // Task.Run, and read without an async enumerator: per active room that saved ~300 B of the 3 KB the worker held
        // (docs/benchmarks.md, memory per active room).
        await Task.Yield();
        if (room.Pattern is not null)
        {
            await PumpPatternAsync(room, subscription);
            return;
        }

        var msgs = subscription.Msgs;
        // Ends when the subscription is disposed (last member left, or shutdown).
        while (await msgs.WaitToReadAsync())
        {
            while (msgs.TryRead(out var msg))
            {
                await HandleAsync(room, room.Name, msg);
            }
        }
    }

    /// <summary>
    /// A pattern's pump: each time its buffer is drained, whatever the buffer dropped and no later message has filled
    /// yet (the tail of a burst) is read from the stream, so a quiet pattern is not left short.
    /// </summary>
    private async Task PumpPatternAsync(Room room, INatsSub<byte[]> subscription)
    {
        var messages = subscription.Msgs;
        var capacity = _options.Value.RoomFeedCapacity;
        while (await messages.WaitToReadAsync())
        {
            while (true)
            {
                // Full: it may have dropped messages since our last read (only reads empty it). NATS.Net's report of
                // which comes through its event queue, too late to fill them in stream order.
                if (messages.Count >= capacity)
                {
                    room.Sequence.MarkOverflowed();
                }

                if (!messages.TryRead(out var msg))
                {
                    break;
                }

                // A pattern's messages are of the rooms it matches, each named by its subject.
                if (_options.Value.RoomOf(msg.Subject, live: true) is not { } name)
                {
                    LogNotARoom(msg.Subject, room.Name);
                    continue;
                }

                await HandleAsync(room, name, msg);
            }

            try
            {
                await room.Sequence.FillDroppedAsync();
            }
            catch (Exception ex)
            {
                // The next message (or the next time the buffer drains) fills it.
                LogDispatchFailed(ex, room.Name);
            }
        }
    }

    private async Task HandleAsync(Room room, string name, NatsMsg<byte[]> msg)
    {
        var message = _reader.ReadStamped(name, msg);
        if (message is null)
        {
            LogNotFromStream(msg.Subject);
            return;
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

    private sealed class Feed : IAsyncDisposable
    {
        private readonly NatsRoomFeedFactory _owner;
        private readonly INatsSub<byte[]> _subscription;
        private readonly Task _pump;

        public Feed(NatsRoomFeedFactory owner, Room room, INatsSub<byte[]> subscription)
        {
            _owner = owner;
            _subscription = subscription;
            _pump = owner.PumpAsync(room, subscription);
        }

        public async ValueTask DisposeAsync()
        {
            _owner.Forget(_subscription);
            await _subscription.DisposeAsync();
            await _pump;
        }
    }

    [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Ignored a message on {Subject} without stream headers")]
    private partial void LogNotFromStream(string subject);

    // Debug: a backend storing under the prefix on a subject that is no room name is not the worker's concern.
    [LoggerMessage(EventId = 1210, Level = LogLevel.Debug, Message = "Ignored a message on {Subject} for pattern {Pattern}: not a valid room name")]
    private partial void LogNotARoom(string subject, string pattern);

    [LoggerMessage(EventId = 1202, Level = LogLevel.Error, Message = "Dispatching a message of room {Room} failed")]
    private partial void LogDispatchFailed(Exception exception, string room);
}
