namespace Bridge.Worker.Rooms;

/// <summary>
/// A room's stored messages (the stream): what the room's sequencing fills gaps from, and what members that are
/// joining with <c>since</c> or have fallen behind read from.
/// </summary>
internal interface IRoomLog
{
    /// <summary>The stream sequence of the room's last stored message; 0 when it has none.</summary>
    ValueTask<ulong> GetLastSeqAsync(string room, CancellationToken cancellationToken);

    /// <summary>True when the message <paramref name="seq"/> is still stored and belongs to <paramref name="room"/>.</summary>
    ValueTask<bool> IsStoredInRoomAsync(string room, ulong seq, CancellationToken cancellationToken);

    /// <summary>
    /// The room's stored messages after <paramref name="afterSeq"/>, in order, up to <paramref name="upToSeq"/>
    /// (inclusive; null: to the end of the stream as it is while reading), at most <paramref name="limit"/> of them.
    /// <paramref name="mustReach"/>: a seq known to be stored; reading does not stop short of it at one empty fetch.
    /// </summary>
    IAsyncEnumerable<RoomMessage> ReadAsync(string room, ulong afterSeq, ulong? upToSeq, CancellationToken cancellationToken, ulong mustReach = 0, ReadLimit limit = default);

    /// <summary>
    /// Starts reading the newest stored message of each room of <paramref name="room"/> (a room, or a pattern: each room
    /// it matches) as of stream seq <paramref name="upToSeq"/>, leaving out rooms whose newest is not after
    /// <paramref name="afterSeq"/>: a join with <c>latest</c>, or a conflated resume.
    /// </summary>
    /// <exception cref="LatestLimitException">More than <paramref name="maxRooms"/> rooms have a message to return.</exception>
    ValueTask<ILatestPages> ReadLatestEachAsync(string room, ulong afterSeq, ulong upToSeq, int maxRooms, CancellationToken cancellationToken);
}

/// <summary>The newest message of each room, read a page at a time (<see cref="IRoomLog.ReadLatestEachAsync"/>).</summary>
internal interface ILatestPages
{
    /// <summary>Rooms with a message to return, counted when the read started (at most the limit it was given).</summary>
    int Rooms { get; }

    /// <summary>The next page, within <paramref name="limit"/>; empty once every room was returned.</summary>
    ValueTask<IReadOnlyList<RoomMessage>> NextAsync(ReadLimit limit, CancellationToken cancellationToken);
}

/// <summary>A join with <c>latest</c> would return the last message of more rooms than one join may (<c>MaxLatestRooms</c>).</summary>
internal sealed class LatestLimitException(int max)
    : Exception($"latest would return more than {max} rooms")
{
    public int Max { get; } = max;
}

/// <summary>
/// How much one read may bring into memory: at most <see cref="Messages"/> messages and about <see cref="Bytes"/>
/// bytes (never less than one message). The default is no limit.
/// </summary>
internal readonly record struct ReadLimit(int Messages, long Bytes)
{
    public int MaxMessages => Messages > 0 ? Messages : int.MaxValue;

    public long MaxBytes => Bytes > 0 ? Bytes : long.MaxValue;
}
