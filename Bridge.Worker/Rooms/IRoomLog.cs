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
