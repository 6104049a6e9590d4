using Bridge.Worker.Protocol;

namespace Bridge.Worker.Connections;

/// <summary>
/// The rooms and room patterns of one connection, joined or joining: the one owner of that table. Joining adds a membership here,
/// and leaving a room (asked by the client, refused by a refreshed token, a failed join, the connection closing)
/// is this one path: out of the table, the membership closed, out of the room.
/// </summary>
internal sealed class SessionRooms
{
    // A connection's rooms change from its own receive loop and its few background joins: one lock is enough. The
    // table is created by the first join; most idle connections hold no room (docs/benchmarks.md, memory per idle
    // WebSocket).
    private readonly Lock _gate = new();
    // A set keyed by each membership's room name, not a dictionary of name to membership: an entry is 16 B instead of
    // 24 (a dashboard connection holds a thousand rooms; docs/benchmarks.md, memory per active room).
    private HashSet<RoomMembership>? _rooms;
    private OverlapGroup? _overlaps;
    private int _patterns;
    // Live joins whose seam is not taken yet (RoomMembership.AwaitSeam): while none is, a publish checks nothing else.
    private int _seamsPending;
    // The receive loop's publish waiting for a seam (it is the only one that waits): completed by the next seam taken.
    private TaskCompletionSource? _seamWaiter;

    /// <param name="reader">The worker's one room reader, which this connection's memberships use.</param>
    public SessionRooms(RoomReader reader)
    {
        ArgumentNullException.ThrowIfNull(reader);
        Reader = reader;
    }

    /// <summary>
    /// The worker's room reader, which this connection's memberships use (catch-ups, hold limits): given once per
    /// connection, at its start, instead of to each membership (8 B less per active room).
    /// </summary>
    public RoomReader Reader { get; }

    /// <summary>Rooms joined or joining.</summary>
    public int Count
    {
        get
        {
            lock (_gate)
            {
                return _rooms?.Count ?? 0;
            }
        }
    }

    /// <summary>True while a join has not answered yet (it is reading its backlog, or waiting to start).</summary>
    public bool AnyJoining
    {
        get
        {
            lock (_gate)
            {
                return _rooms is not null && _rooms.Any(m => m.IsJoining);
            }
        }
    }

    /// <summary>The membership in <paramref name="room"/>, joined or joining; null when none.</summary>
    public RoomMembership? Find(string room)
    {
        lock (_gate)
        {
            return _rooms is not null && ByName(_rooms).TryGetValue(room, out var membership) ? membership : null;
        }
    }

    /// <summary>
    /// Makes room in the table for <paramref name="count"/> more rooms (a batch join's, about to be added one by one),
    /// never beyond <paramref name="maxRooms"/>: one resize instead of one per doubling.
    /// </summary>
    public void Reserve(int count, int maxRooms)
    {
        lock (_gate)
        {
            _rooms ??= new HashSet<RoomMembership>(1, ByRoomName.Instance);
            _rooms.EnsureCapacity(Math.Min(_rooms.Count + count, maxRooms));
        }
    }

    /// <summary>
    /// Adds a membership for a join, unless the connection is already in (or joining) its room or pattern, or in
    /// <paramref name="maxRooms"/> rooms and patterns, or (for a pattern) in <paramref name="maxPatterns"/> patterns. A
    /// membership that overlaps another of the connection's shares their <see cref="OverlapGroup"/> from now on.
    /// </summary>
    public AddResult TryAdd(RoomMembership membership, int maxRooms, int maxPatterns, out RoomMembership? existing)
    {
        lock (_gate)
        {
            _rooms ??= new HashSet<RoomMembership>(1, ByRoomName.Instance);
            if (_rooms.TryGetValue(membership, out existing))
            {
                return AddResult.AlreadyIn;
            }

            if (_rooms.Count >= maxRooms)
            {
                return AddResult.TooManyRooms;
            }

            if (membership.Pattern is not null && _patterns >= maxPatterns)
            {
                return AddResult.TooManyPatterns;
            }

            // Only a connection with a pattern can have overlapping joins (two rooms never overlap).
            if (_patterns > 0 || membership.Pattern is not null)
            {
                foreach (var other in _rooms)
                {
                    if (other.Overlaps(membership))
                    {
                        _overlaps ??= new OverlapGroup();
                        other.JoinGroup(_overlaps);
                        membership.JoinGroup(_overlaps);
                    }
                }
            }

            _rooms.Add(membership);
            if (membership.AwaitSeam())
            {
                Interlocked.Increment(ref _seamsPending);
            }

            if (membership.Pattern is not null)
            {
                _patterns++;
            }

            return AddResult.Added;
        }
    }

    /// <summary>
    /// The longest a publish waits for its connection's join of the same room to take its seam (<see cref="WhenSeamTakenAsync"/>).
    /// It waits on the receive loop, so nothing else of the connection is read meanwhile (leave, token refresh, pongs,
    /// close): a join queued behind batch lanes replaying large backlogs, or a slow NATS, must not hold that for long.
    /// A seam is one stream request away, so a join that is started takes it well within this; after it the publish
    /// goes as it would without the join (docs/protocol.md §4, room.join).
    /// </summary>
    internal static readonly TimeSpan MaxSeamWait = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Completes once no live join of <paramref name="room"/> by this connection is waiting for its seam (the room's last
    /// stream seq, from which the join is live): a publish to the room sent to NATS after that is stored after the seam,
    /// so the join delivers it live after its <c>room.joined</c>. At once (no lock, no lookup) while no join of the
    /// connection waits for its seam; at once, with nothing allocated, while none of <paramref name="room"/> does. A join
    /// that fails or is left closes its membership, which ends the wait too. It ends anyway after
    /// <see cref="MaxSeamWait"/> (on <paramref name="time"/>'s clock), returning true: the publish then goes, and may be
    /// stored before the seam. Either token cancelled (the connection closing or aborted) ends it without throwing: the
    /// caller goes on as for a frame read before the close (the publish is stored, and not answered). Only exact rooms:
    /// a pattern join's seam is never waited for (nor counted).
    /// </summary>
    public ValueTask<bool> WhenSeamTakenAsync(string room, TimeProvider time, CancellationToken closing, CancellationToken cancellationToken) =>
        Volatile.Read(ref _seamsPending) == 0 ? ValueTask.FromResult(false) : WaitForSeamAsync(room, time, closing, cancellationToken);

    private async ValueTask<bool> WaitForSeamAsync(string room, TimeProvider time, CancellationToken closing, CancellationToken cancellationToken)
    {
        // Another room's join is pending, not this one's (most publishes during a large batch join): nothing to wait for.
        // Looked up once: a membership taken out of the table is closed, which clears its SeamPending.
        if (Find(room) is not { SeamPending: true } joining)
        {
            return false;
        }

        var started = time.GetTimestamp();
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(closing, cancellationToken);
        while (!ended.IsCancellationRequested)
        {
            // The waiter is in place before the membership is looked at: a seam taken after the look completes it.
            var waiter = Volatile.Read(ref _seamWaiter) ?? new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            waiter = Interlocked.CompareExchange(ref _seamWaiter, waiter, null) ?? waiter;
            if (!joining.SeamPending)
            {
                return false;
            }

            var left = MaxSeamWait - time.GetElapsedTime(started);
            if (left <= TimeSpan.Zero)
            {
                return true;
            }

            await waiter.Task.WaitAsync(left, time, ended.Token).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }

        return false;
    }

    /// <summary>Live joins counted as waiting for their seam (the tests' view of the count).</summary>
    internal int SeamsPending => Volatile.Read(ref _seamsPending);

    /// <summary>A membership's seam was taken, or it closed before (once each, <see cref="RoomMembership.AwaitSeam"/>): wakes a waiting publish.</summary>
    internal void SeamReached()
    {
        Interlocked.Decrement(ref _seamsPending);
        // Called under the member's lock (and the room's sequence gate): safe only because the waiter runs its
        // continuation asynchronously (RunContinuationsAsynchronously), never inline here.
        Interlocked.Exchange(ref _seamWaiter, null)?.TrySetResult();
    }

    /// <summary>Called under the lock when a membership leaves the table.</summary>
    private void Removed(RoomMembership membership)
    {
        if (membership.Pattern is not null)
        {
            _patterns--;
        }
    }

    /// <summary>Leaves <paramref name="room"/>; false when the connection was neither in it nor joining it.</summary>
    public async ValueTask<bool> LeaveAsync(string room)
    {
        RoomMembership? membership;
        lock (_gate)
        {
            if (_rooms is null || !ByName(_rooms).TryGetValue(room, out membership))
            {
                return false;
            }

            _rooms.Remove(membership);

            Removed(membership);
        }

        await CloseAndLeaveAsync(membership);
        return true;
    }

    /// <summary>Leaves the room of <paramref name="membership"/> if it is still this connection's membership there (a failed join).</summary>
    public async ValueTask LeaveAsync(RoomMembership membership)
    {
        lock (_gate)
        {
            if (_rooms is not null && _rooms.TryGetValue(membership, out var current) && ReferenceEquals(current, membership))
            {
                _rooms.Remove(membership);
                Removed(membership);
            }
        }

        await CloseAndLeaveAsync(membership);
    }

    /// <summary>
    /// Leaves every room <paramref name="stillGranted"/> refuses (after a token refresh), telling the client with
    /// <c>room.left {reason: forbidden}</c>; returns how many were left.
    /// </summary>
    public async ValueTask<int> RevokeAsync(Func<string, bool> stillGranted, ClientSession session)
    {
        List<RoomMembership> revoked = [];
        lock (_gate)
        {
            foreach (var membership in _rooms ?? [])
            {
                if (!stillGranted(membership.RoomName))
                {
                    revoked.Add(membership);
                }
            }

            foreach (var membership in revoked)
            {
                _rooms!.Remove(membership);
                Removed(membership);
            }
        }

        foreach (var membership in revoked)
        {
            await CloseAndLeaveAsync(membership);
            session.Send(ControlFrames.RoomLeftForbidden(membership.RoomName));
        }

        return revoked.Count;
    }

    /// <summary>Leaves every room (the connection is closing; its background joins have ended).</summary>
    public async Task LeaveAllAsync()
    {
        List<RoomMembership> all;
        lock (_gate)
        {
            all = _rooms is null ? [] : [.. _rooms];
            _rooms = null;
            _patterns = 0;
        }

        foreach (var membership in all)
        {
            await CloseAndLeaveAsync(membership);
        }
    }

    /// <summary>
    /// Memberships are equal when their room names are (ordinal), and a name finds its membership: the key of
    /// <see cref="SessionRooms"/>' set.
    /// </summary>
    private sealed class ByRoomName : IEqualityComparer<RoomMembership>, IAlternateEqualityComparer<string, RoomMembership>
    {
        public static readonly ByRoomName Instance = new();

        public bool Equals(RoomMembership? x, RoomMembership? y) => string.Equals(x?.RoomName, y?.RoomName, StringComparison.Ordinal);

        public int GetHashCode(RoomMembership obj) => string.GetHashCode(obj.RoomName, StringComparison.Ordinal);

        public bool Equals(string alternate, RoomMembership other) => string.Equals(alternate, other.RoomName, StringComparison.Ordinal);

        public int GetHashCode(string alternate) => string.GetHashCode(alternate, StringComparison.Ordinal);

        // Only lookups go by name: a membership is added as itself.
        public RoomMembership Create(string alternate) => throw new NotSupportedException("memberships are added as themselves");
    }

    private static HashSet<RoomMembership>.AlternateLookup<string> ByName(HashSet<RoomMembership> rooms) => rooms.GetAlternateLookup<string>();

    private static async ValueTask CloseAndLeaveAsync(RoomMembership membership)
    {
        // Closing first: no fan-out already under way delivers after this; the room is left exactly once, here or by
        // a join still in flight (which finds the membership closed when it reaches the room).
        if (membership.Close() is { } room)
        {
            await room.LeaveAsync(membership);
        }
    }
}

/// <summary>What <see cref="SessionRooms.TryAdd"/> did.</summary>
internal enum AddResult
{
    Added,
    AlreadyIn,
    TooManyRooms,
    TooManyPatterns,
}
