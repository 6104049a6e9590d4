namespace Bridge.Worker.Rooms;

/// <summary>Opens the live feed of a room: the one subscription a worker holds per active room.</summary>
internal interface IRoomFeedFactory
{
    /// <summary>Live messages a room keeps while its sequence reads the stream (a gap fill); more are read from the stream too.</summary>
    int BacklogCapacity { get; }

    /// <summary>
    /// Subscribes; every message of the room is handed to <see cref="RoomSequence.OnLive"/> in the order the server sent
    /// them, and <see cref="RoomSequence.Start"/> is given the room's last stored seq, asked for once the subscription is in place. Disposing the feed
    /// unsubscribes and waits for the sequence to be idle.
    /// </summary>
    ValueTask<IAsyncDisposable> OpenAsync(Room room, CancellationToken cancellationToken);
}
