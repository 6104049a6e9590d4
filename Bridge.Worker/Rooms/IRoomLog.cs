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
    /// <paramref name="mustReach"/>: a seq known to be stored; reading does not stop short of it at one empty answer.
    /// With <paramref name="check"/>, the read also finds out whether retention may have dropped messages of the room
    /// after <paramref name="afterSeq"/> before it got to them (<see cref="DropCheck.Dropped"/>).
    /// </summary>
    IAsyncEnumerable<RoomMessage> ReadAsync(
        string room, ulong afterSeq, ulong? upToSeq, CancellationToken cancellationToken, ulong mustReach = 0, ReadLimit limit = default, DropCheck? check = null);

    /// <summary>A reader of <paramref name="room"/> for a series of reads that each go on from where the last ended (a replay in paced reads).</summary>
    IRoomCursor OpenCursor(string room);
}

/// <summary>
/// Reads one room in a series of reads (<see cref="IRoomLog.OpenCursor"/>): each like <see cref="IRoomLog.ReadAsync"/>;
/// one that starts where the previous ended goes on without setting anything up again. It may hold server state
/// between reads (at most one consumer): dispose it when done.
/// </summary>
internal interface IRoomCursor : IAsyncDisposable
{
    /// <summary>As <see cref="IRoomLog.ReadAsync"/>, for this cursor's room.</summary>
    IAsyncEnumerable<RoomMessage> ReadAsync(ulong afterSeq, ulong? upToSeq, ulong mustReach, ReadLimit limit, DropCheck? check, CancellationToken cancellationToken);
}

/// <summary>
/// What a read found out about retention (<see cref="IRoomLog.ReadAsync"/>). Retention drops a room's oldest messages
/// first: while a message is still stored, nothing after it has been dropped.
/// </summary>
internal sealed class DropCheck
{
    /// <summary>True once the read found its start (above 0) no longer stored: messages after it may have been dropped unread.</summary>
    public bool Dropped { get; set; }

    /// <summary>
    /// A message the read knew to be stored before it read on without checking as it went: unless it is still stored
    /// after the read, messages after it may have been dropped unread. Null when the read checked everything itself.
    /// </summary>
    public ulong? ConfirmAfterRead { get; set; }
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
