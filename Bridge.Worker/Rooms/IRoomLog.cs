namespace Bridge.Worker.Rooms;

/// <summary>
/// A room's stored messages (the stream): what the room's sequencing fills gaps from, and what members that are
/// joining with <c>since</c> or have fallen behind read from.
/// </summary>
internal interface IRoomLog
{
    /// <summary>The stream sequence of the room's last stored message; 0 when it has none.</summary>
    ValueTask<ulong> GetLastSeqAsync(string room, CancellationToken cancellationToken);

    /// <summary>
    /// The last stored seq of each of <paramref name="rooms"/> (rooms, not patterns), asked for together (a batch join's
    /// feeds): one entry per room, in order, each its seq (0: none) or why it could not be read. A failure is only its
    /// own rooms'; this throws only when <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    ValueTask<LastSeq[]> GetLastSeqsAsync(IReadOnlyList<string> rooms, CancellationToken cancellationToken) =>
        GetLastSeqsOneByOneAsync(this, rooms, cancellationToken);

    /// <summary><see cref="GetLastSeqsAsync"/> by one <see cref="GetLastSeqAsync"/> per room of <paramref name="log"/>.</summary>
    static async ValueTask<LastSeq[]> GetLastSeqsOneByOneAsync(IRoomLog log, IReadOnlyList<string> rooms, CancellationToken cancellationToken)
    {
        var seqs = new LastSeq[rooms.Count];
        for (var i = 0; i < rooms.Count; i++)
        {
            try
            {
                seqs[i] = new LastSeq(await log.GetLastSeqAsync(rooms[i], cancellationToken), null);
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                seqs[i] = new LastSeq(0, ex);
            }
        }

        return seqs;
    }

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

    /// <summary>
    /// Starts reading the newest stored message of each room of <paramref name="room"/> (a room, or a pattern: each room
    /// it matches) as of stream seq <paramref name="upToSeq"/>, leaving out rooms whose newest is not after
    /// <paramref name="afterSeq"/>: a join with <c>latest</c>, or a conflated resume.
    /// </summary>
    /// <exception cref="LatestLimitException">More than <paramref name="maxRooms"/> rooms have a message to return.</exception>
    ValueTask<ILatestPages> ReadLatestEachAsync(string room, ulong afterSeq, ulong upToSeq, int maxRooms, CancellationToken cancellationToken);
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

/// <summary>The newest message of each room, read a page at a time (<see cref="IRoomLog.ReadLatestEachAsync"/>).</summary>
internal interface ILatestPages
{
    /// <summary>Rooms with a message to return, counted when the read started (at most the limit it was given).</summary>
    int Rooms { get; }

    /// <summary>The next page, within <paramref name="limit"/>; empty once every room was returned.</summary>
    ValueTask<IReadOnlyList<RoomMessage>> NextAsync(ReadLimit limit, CancellationToken cancellationToken);
}

/// <summary>A room's last stored seq (<see cref="Seq"/>, 0: none), or why it could not be read (<see cref="Failure"/>).</summary>
internal readonly record struct LastSeq(ulong Seq, Exception? Failure);

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
