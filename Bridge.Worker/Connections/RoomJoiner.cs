using Bridge.Contracts;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Connections;

/// <summary>
/// Joins a connection (of any transport) to a room or room pattern. Without <c>since</c> the connection is live from
/// now on. With it, the stored messages after <c>since</c> are read from the stream first, then the connection switches
/// to the live feed with no gap and no duplicate at the seam (<see cref="RoomReader"/>). With <c>latest</c>, the newest
/// message of each room comes first; with <c>maxRate</c>, the member is conflated (<see cref="Rooms.ConflatedMember"/>). Each join
/// runs beside the connection's receive loop, so one room's replay never holds up the connection's other rooms.
/// </summary>
internal sealed partial class RoomJoiner(
    RoomRegistry rooms, RoomReader reader, Operations.BridgeMetrics metrics, IOptions<ConnectionOptions> options, ILogger<RoomJoiner> logger)
{
    /// <summary>Starts a join; answers <c>room.joined</c> (or an error) on the session when done.</summary>
    public ValueTask StartJoinAsync(ClientSession session, string name, JoinOptions join, string? reference, CancellationToken cancellationToken) =>
        TryAdd(session, name, join, reference) is { } membership
            ? session.StartBackgroundAsync(
                static (state, ct) => state.Joiner.JoinAsync(state.Membership, state.Reference, ct), (Joiner: this, Membership: membership, Reference: reference), cancellationToken)
            : ValueTask.CompletedTask;

    /// <summary>
    /// Starts the joins of a batch <c>room.join</c> (<paramref name="requests"/>, each already checked); each answers its
    /// own <c>room.joined</c> (or error) when done, as if joined alone. Its plain live joins (no <c>since</c>, <c>latest</c>
    /// or <c>maxRate</c>, not a pattern, not a room presence observes) are one request of the session that activates them together
    /// (<see cref="JoinLiveAsync"/>); the others are one request whose entries run on the session's free request slots
    /// (<see cref="ClientSession.StartBackgroundBatchAsync{TItem}"/>).
    /// </summary>
    public async ValueTask StartJoinsAsync(ClientSession session, IReadOnlyList<(string Room, JoinOptions Options)> requests, string? reference, CancellationToken cancellationToken)
    {
        if (requests.Count == 0)
        {
            return;
        }

        session.Rooms.Reserve(requests.Count, options.Value.MaxRoomsPerConnection);
        List<RoomMembership>? live = null;
        List<RoomMembership>? others = null;
        foreach (var (name, join) in requests)
        {
            // An entry may be answered at once (already in: room.joined again; past the room limit: its error): a batch's
            // answers wait, as its joins' room.joined do (JoinLiveAsync), while room messages would not fit the queue.
            await session.Queue.WaitForMessageRoomAsync(cancellationToken);

            if (TryAdd(session, name, join, reference) is { } membership)
            {
                // A room presence observes goes one by one: an entry left before its turn is then never joined, so no
                // one sees its user come and go (together, every entry is joined before any is completed).
                var list = membership.Pattern is null && join is { Since: null, Latest: false, MaxRate: null } && !rooms.IsObserved(name)
                    ? live ??= new List<RoomMembership>(requests.Count)
                    : others ??= [];
                list.Add(membership);
            }
        }

        if (live is not null)
        {
            await session.StartBackgroundAsync(
                static (state, ct) => state.Joiner.JoinLiveAsync(state.Live, state.Reference, ct), (Joiner: this, Live: live, Reference: reference), cancellationToken);
        }

        if (others is not null)
        {
            await session.StartBackgroundBatchAsync(others, (membership, ct) => JoinAsync(membership, reference, ct), cancellationToken);
        }
    }

    /// <summary>
    /// Adds the membership to the session's rooms: null when it is not to be joined (already in: answered again;
    /// beyond the connection's limits: answered with the error).
    /// </summary>
    private RoomMembership? TryAdd(ClientSession session, string name, JoinOptions join, string? reference)
    {
        var o = options.Value;
        var membership = new RoomMembership(session, name, join);
        switch (session.Rooms.TryAdd(membership, o.MaxRoomsPerConnection, o.MaxPatternsPerConnection, out var existing))
        {
            case AddResult.AlreadyIn:
                // Already in: answers with its position; a join in flight answers itself.
                existing!.AnswerAgain();
                return null;
            case AddResult.TooManyRooms:
                session.SendError(ErrorCodes.TooManyRooms, $"a connection may be in at most {o.MaxRoomsPerConnection} rooms", reference, name);
                return null;
            case AddResult.TooManyPatterns:
                session.SendError(ErrorCodes.TooManyRooms, $"a connection may be in at most {o.MaxPatternsPerConnection} room patterns", reference, name);
                return null;
            default:
                return membership;
        }
    }

    /// <summary>
    /// Starts the joins of a stream transport (SSE, long-poll) that gets all its rooms at once. It returns at once:
    /// the joins wait for the session's request slots in the background while the caller already drains the
    /// queue; waiting here would deadlock once replays fill the queue that nobody reads yet.
    /// </summary>
    public Task StartJoinsAsync(ClientSession session, IReadOnlyList<string> names, IReadOnlyDictionary<string, ulong> positions, JoinOptions join) =>
        Task.Run(async () =>
        {
            try
            {
                foreach (var name in names)
                {
                    await StartJoinAsync(session, name, join with { Since = positions.TryGetValue(name, out var p) ? p : null }, null, session.Closing);
                }
            }
            catch (OperationCanceledException) when (session.Closing.IsCancellationRequested)
            {
            }
        });

    // Pooled: each join is awaited by its request or batch lane as soon as it starts, and gives its box back when it
    // ends, so the next join a lane or the receive loop starts (on that thread) reuses it.
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask JoinAsync(RoomMembership membership, string? reference, CancellationToken cancellationToken)
    {
        var session = membership.Session;
        var name = membership.RoomName;
        var since = membership.Options.Since;
        if (membership.State == MemberState.Closed)
        {
            // Left (room.leave, a revoked grant) while waiting for its turn in a batch: never opened, never announced.
            return;
        }

        try
        {
            var room = await rooms.JoinAsync(name, membership, cancellationToken);
            if (!membership.Attach(room, since ?? 0))
            {
                await room.LeaveAsync(membership); // left while joining
                return;
            }

            if (await reader.JoinAsync(membership, room, cancellationToken) is not { } joined)
            {
                return; // left while joining
            }

            if (since is not null)
            {
                metrics.Resumed(joined.Truncated);
            }

            LogJoined(session.ConnectionId, name, joined.Position, joined.Replayed, joined.Truncated);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The connection is closing; its clean-up leaves the room.
        }
        catch (LatestLimitException ex)
        {
            await session.Rooms.LeaveAsync(membership);
            session.SendError(
                ErrorCodes.TooManyRooms,
                $"latest on '{name}' would return more than {ex.Max} rooms; join a narrower pattern, or without latest", reference, name);
        }
        catch (Exception ex)
        {
            await FailAsync(membership, ex, reference);
        }
    }

    /// <summary>
    /// The live joins of one batch frame (<paramref name="memberships"/>, plain: no <c>since</c>, <c>latest</c>,
    /// <c>maxRate</c>, no pattern) as one unit: every membership added to its room and the rooms not active yet opened
    /// together (<see cref="RoomRegistry.JoinManyAsync"/>: their subscriptions written at once, their last seqs asked in
    /// one batched ask), then every join completed in one loop that never waits (<see cref="RoomReader.JoinLive"/>: the
    /// seam, <c>room.joined</c>, live). Each join is answered as if alone: a room that could not be opened answers its own
    /// <c>unavailable</c>, a membership left meanwhile answers nothing more.
    /// </summary>
    private async ValueTask JoinLiveAsync(List<RoomMembership> memberships, string? reference, CancellationToken cancellationToken)
    {
        // Left (room.leave, a revoked grant) while waiting for the request slot: never opened, never announced.
        memberships.RemoveAll(static m => m.State == MemberState.Closed);
        if (memberships.Count == 0)
        {
            return;
        }

        var names = memberships.ConvertAll(static m => m.RoomName);
        RoomJoin[] joins;
        try
        {
            joins = await rooms.JoinManyAsync(names, memberships, cancellationToken);
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            return; // the connection is closing: the registry took every member out of its room again
        }

        metrics.BatchJoined(memberships.Count);

        // Every membership attached to its room first (one closed meanwhile leaves it here): from then on the
        // connection's clean-up leaves each, should it close while the loop below waits.
        var attached = new List<(RoomMembership Membership, Room Room)>(memberships.Count);
        for (var i = 0; i < memberships.Count; i++)
        {
            var membership = memberships[i];
            try
            {
                if (joins[i].Failure is { } failure)
                {
                    await FailAsync(membership, failure, reference);
                    continue;
                }

                var room = joins[i].Room!;
                if (!membership.Attach(room, 0))
                {
                    await room.LeaveAsync(membership); // left while joining
                    continue;
                }

                attached.Add((membership, room));
            }
            catch (Exception ex)
            {
                await FailAsync(membership, ex, reference);
            }
        }

        var queue = attached.Count > 0 ? attached[0].Membership.Session.Queue : null;
        foreach (var (membership, room) in attached)
        {
            try
            {
                // room.joined is an answer, and answers may overflow only a queue the client does not read: a batch's
                // (up to MaxRoomsPerConnection at once) waits, as a replay does, while room messages would not fit. The
                // seam is taken after the wait: nothing of the room is this member's before its room.joined.
                await queue!.WaitForMessageRoomAsync(cancellationToken);

                if (reader.JoinLive(membership, room) is { } joined)
                {
                    LogJoined(membership.Session.ConnectionId, membership.RoomName, joined.Position, 0, false);
                }
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                return; // the connection is closing: its clean-up leaves every room attached above
            }
            catch (Exception ex)
            {
                await FailAsync(membership, ex, reference);
            }
        }
    }

    /// <summary>A join that failed (not for the connection closing): logged, left, and answered <c>unavailable</c> unless already left.</summary>
    private async ValueTask FailAsync(RoomMembership membership, Exception exception, string? reference)
    {
        var session = membership.Session;
        var name = membership.RoomName;
        LogJoinFailed(exception, session.ConnectionId, name);
        var left = membership.State == MemberState.Closed; // room.left already answered it: no error after that
        await session.Rooms.LeaveAsync(membership);
        if (!left)
        {
            session.SendError(ErrorCodes.Unavailable, $"room '{name}' could not be joined now; retry", reference, name);
        }
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Connection {ConnectionId} could not join {Room}")]
    private partial void LogJoinFailed(Exception exception, string connectionId, string room);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Debug, Message = "Connection {ConnectionId} joined {Room} at {Seq} (replayed {Replayed}, truncated {Truncated})")]
    private partial void LogJoined(string connectionId, string room, ulong seq, int replayed, bool truncated);
}
