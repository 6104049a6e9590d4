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

    /// <summary>
    /// Opens the feeds of many rooms at once (the rooms of a batch join that were not active): each as by
    /// <see cref="OpenAsync"/>, but every subscription is written first and then every room's last seq is asked in one
    /// batched ask (<see cref="IRoomLog.GetLastSeqsAsync"/>). One entry per room, in order: its feed, or why it could not
    /// be opened (a feed whose last seq could not be read is closed again). Never throws: a room's failure is its own.
    /// Not cancellable, as no one joiner's open is: other joiners may share these feeds.
    /// </summary>
    async ValueTask<FeedOpen[]> OpenManyAsync(IReadOnlyList<Room> rooms)
    {
        var opens = new FeedOpen[rooms.Count];
        for (var i = 0; i < rooms.Count; i++)
        {
            try
            {
                opens[i] = new FeedOpen(await OpenAsync(rooms[i], CancellationToken.None), null);
            }
            catch (Exception ex)
            {
                opens[i] = new FeedOpen(null, ex);
            }
        }

        return opens;
    }
}

/// <summary>A room's feed opened (<see cref="Feed"/>), or why it could not be (<see cref="Failure"/>).</summary>
internal readonly record struct FeedOpen(IAsyncDisposable? Feed, Exception? Failure);
