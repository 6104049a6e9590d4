namespace Bridge.Worker.Rooms;

/// <summary>
/// Told of every member that joins or leaves a room on this worker (presence observes the rooms this way, so the
/// rooms do not depend on it). Called in order for each member, after the room's feed is open; awaited.
/// </summary>
internal interface IRoomObserver
{
    /// <summary>True when joins and leaves of <paramref name="room"/> matter to this observer (the others it ignores).</summary>
    bool Observes(string room);

    /// <summary>A connection of <paramref name="user"/> is in <paramref name="room"/> on this worker.</summary>
    ValueTask JoinedAsync(string room, string user);

    /// <summary>A connection of <paramref name="user"/> left <paramref name="room"/> on this worker.</summary>
    ValueTask LeftAsync(string room, string user);
}
