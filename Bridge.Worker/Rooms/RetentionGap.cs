namespace Bridge.Worker.Rooms;

/// <summary>
/// What a series of reads of one room found out about retention (<see cref="DropCheck"/>), kept until it is settled and
/// reported: the one place that decides "messages after this position may be gone", for a member reading the room
/// (a resume or a catch-up, <c>Connections/RoomReader</c>) and for a room's own gap fills (<see cref="RoomSequence"/>).
/// Owned by one reader at a time: not thread-safe.
/// </summary>
internal sealed class RetentionGap
{
    /// <summary>Messages after this position may have been dropped by retention unread; not reported yet.</summary>
    public ulong? After { get; private set; }

    /// <summary>A message known to be stored before a read went on unchecked: unless it still is, messages after it may be gone.</summary>
    public ulong? Unconfirmed { get; private set; }

    /// <summary>True when nothing is left to confirm or report.</summary>
    public bool IsSettled => After is null && Unconfirmed is null;

    /// <summary>Keeps what a read from <paramref name="start"/> found out (the earliest position wins); safe to call again for the same read.</summary>
    public void Note(DropCheck check, ulong start)
    {
        if (check.Dropped)
        {
            After = Math.Min(After ?? start, start);
        }

        if (check.ConfirmAfterRead is { } kept)
        {
            Unconfirmed = Math.Min(Unconfirmed ?? kept, kept);
        }
    }

    /// <summary>
    /// Confirms the message a read left to confirm (<see cref="DropCheck.ConfirmAfterRead"/>, kept until this succeeds):
    /// true when it is no longer stored, so messages after it may have been dropped unread (kept in <see cref="After"/>).
    /// </summary>
    public async ValueTask<bool> ConfirmAsync(IRoomLog log, string room, CancellationToken cancellationToken)
    {
        if (Unconfirmed is not { } kept)
        {
            return false;
        }

        var gone = !await log.IsStoredInRoomAsync(room, kept, cancellationToken);
        Unconfirmed = null;
        if (gone)
        {
            After = Math.Min(After ?? kept, kept);
        }

        return gone;
    }

    /// <summary>Takes the gap to report, once: false when there is none.</summary>
    public bool TryTake(out ulong after)
    {
        after = After ?? 0;
        if (After is null)
        {
            return false;
        }

        After = null;
        return true;
    }
}
