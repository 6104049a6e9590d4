namespace Bridge.Worker.Rooms;

/// <summary>Opens the live feed of a room: the one subscription a worker holds per active room.</summary>
internal interface IRoomFeedFactory
{
    /// <summary>Subscribes; every message of the room is passed to <see cref="Room.Dispatch"/> in stream order.</summary>
    ValueTask<IAsyncDisposable> OpenAsync(Room room, CancellationToken cancellationToken);
}
