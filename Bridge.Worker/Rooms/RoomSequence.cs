namespace Bridge.Worker.Rooms;

/// <summary>
/// The one owner of a room's sequencing on this worker: its live position (the seq up to which the room's messages
/// have been dispatched), the gate that orders everything that dispatches (the live feed, gap fills, the catch-up
/// after a NATS reconnect), and the seam at which a member moves from reading the stream to the live dispatch. The
/// NATS side only hands it stamped messages and asks it to catch up; members only ask it for a seam.
/// </summary>
internal sealed partial class RoomSequence(Room room, RoomServices services)
{
    private readonly SemaphoreSlim _gate = new(1, 1);
    private ulong _position;

    /// <summary>
    /// The live position: every message of the room up to it has been dispatched, and is in the stream. Read
    /// without the gate by members catching up (as a target to read towards, never as a seam).
    /// </summary>
    public ulong Position => Volatile.Read(ref _position);

    /// <summary>
    /// Called by the feed once its subscription is in place: everything stored up to now is history, everything
    /// after comes live.
    /// </summary>
    public async ValueTask StartAsync(CancellationToken cancellationToken) =>
        Volatile.Write(ref _position, await services.Log.GetLastSeqAsync(room.Name, cancellationToken));

    /// <summary>
    /// One message from the live feed, in stream order. A message already dispatched (by a gap fill) is skipped;
    /// one whose predecessor was never seen first has the gap filled from the stream.
    /// </summary>
    public async ValueTask OnLiveAsync(RoomMessage message)
    {
        await _gate.WaitAsync();
        try
        {
            if (message.Seq <= _position)
            {
                return;
            }

            if (message.PreviousSeq > _position)
            {
                LogGap(services.Logger, room.Name, _position, message.PreviousSeq);
                services.Metrics.GapFilled();
                await FillAsync(message.PreviousSeq, CancellationToken.None);
            }

            DispatchAt(message);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Dispatches whatever the room stored that the live feed has not (after a NATS reconnect).</summary>
    public async Task CatchUpAsync(CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            var last = await services.Log.GetLastSeqAsync(room.Name, cancellationToken);
            if (last > _position)
            {
                LogCatchUp(services.Logger, room.Name, _position, last);
                await FillAsync(last, cancellationToken);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// The seam: <paramref name="member"/> starts holding live messages, and the position returned is the last one
    /// dispatched before that. Taken under the gate, so every message up to it is in the stream and every message
    /// after it reaches the member's hold: reading the stream up to the seam and then the hold misses nothing.
    /// </summary>
    public async ValueTask<ulong> SeamAsync(IRoomMember member, CancellationToken cancellationToken)
    {
        await _gate.WaitAsync(cancellationToken);
        try
        {
            member.Hold();
            return _position;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>Dispatches the room's stored messages after the position up to <paramref name="upTo"/>. Called under the gate.</summary>
    private async Task FillAsync(ulong upTo, CancellationToken cancellationToken)
    {
        await foreach (var stored in services.Log.ReadAsync(room.Name, _position, upTo, cancellationToken))
        {
            if (stored.Seq > _position)
            {
                DispatchAt(stored);
            }
        }
    }

    /// <summary>
    /// Moves the position to <paramref name="message"/> and fans it out. Members that failed it were closed (their
    /// clients resume); the others have it, so the position moves on and a gap fill goes on with the next message.
    /// </summary>
    private void DispatchAt(RoomMessage message)
    {
        Volatile.Write(ref _position, message.Seq);
        try
        {
            room.Dispatch(message);
        }
        catch (AggregateException ex)
        {
            LogDispatchFailed(services.Logger, ex, room.Name, message.Seq);
        }
    }

    [LoggerMessage(EventId = 1203, Level = LogLevel.Information, Message = "Gap in room {Room}: delivered up to {LastSeq}, next follows {PreviousSeq}; filling from the stream")]
    private static partial void LogGap(ILogger logger, string room, ulong lastSeq, ulong previousSeq);

    [LoggerMessage(EventId = 1208, Level = LogLevel.Error, Message = "Delivering message {Seq} of room {Room} failed for some members")]
    private static partial void LogDispatchFailed(ILogger logger, Exception exception, string room, ulong seq);

    [LoggerMessage(EventId = 1204, Level = LogLevel.Information, Message = "Catching up room {Room} from {LastSeq} to {StoredSeq}")]
    private static partial void LogCatchUp(ILogger logger, string room, ulong lastSeq, ulong storedSeq);
}
