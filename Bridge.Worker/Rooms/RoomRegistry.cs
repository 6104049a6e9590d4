namespace Bridge.Worker.Rooms;

/// <summary>
/// The rooms active on this worker. A room is active while at least one local connection is in it: its feed
/// opens on the first join and closes on the last leave. A room pattern joined is active the same way, under its
/// pattern's text (one subscription with its wildcards). Every join and leave of a room's member is told to the
/// <see cref="IRoomObserver"/>s (presence is one; it ignores rooms without it); a pattern's members take no part.
/// </summary>
internal sealed class RoomRegistry : IAsyncDisposable
{
    // Plain sets under one lock, not a ConcurrentDictionary: an entry is 16 B in its set's array instead of a 48 B node
    // and a bucket (~50 B less per active room), in sets small enough to stay off the large-object heap (RoomTable); a
    // join or leave holds the lock for one lookup.
    private readonly RoomTable _rooms = new();
    private readonly Lock _gate = new();
    private readonly IRoomFeedFactory _feeds;
    private readonly IRoomObserver[] _observers;
    private readonly RoomServices _services;

    // Batches opening their rooms at once (JoinManyAsync), worker-wide: each holds its rooms' opens, asks and answers until
    // its feeds are open; a hundred clients' batches at once kept 100,000 rooms' of them alive together (RSS per room).
    // As many as the last-seq asks in flight (Nats/LastSeqBatch), so the asks stay busy. A constant, not a setting: more
    // batches at once would only queue their asks behind those 4 while holding their rooms' open state, fewer would
    // leave the asks idle between batches; neither changes with the deployment (docs/protocol.md §11, fixed).
    private const int MaxBatchOpens = 4;
    private readonly SemaphoreSlim _batchOpens = new(MaxBatchOpens, MaxBatchOpens);

    /// <summary>Batch opens free now (of <see cref="MaxBatchOpens"/>; for tests: none may stay taken once its batch ended).</summary>
    internal int BatchOpensFree => _batchOpens.CurrentCount;

    public RoomRegistry(IRoomFeedFactory feeds, IRoomLog log, Operations.BridgeMetrics metrics, ILogger<RoomSequence> logger, IEnumerable<IRoomObserver> observers)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        _feeds = feeds;
        _observers = [.. observers];
        _services = new RoomServices(this, log, metrics, logger, feeds.BacklogCapacity, feeds);
        metrics.ObserveActiveRooms(() => ActiveRooms);
    }

    public int ActiveRooms
    {
        get
        {
            lock (_gate)
            {
                return _rooms.Count;
            }
        }
    }

    /// <summary>A snapshot of the active rooms.</summary>
    public IReadOnlyCollection<Room> Snapshot()
    {
        lock (_gate)
        {
            return _rooms.ToArray();
        }
    }

    /// <summary>
    /// Adds <paramref name="member"/> to the room, returning once the room's live feed is open: at once (no state
    /// machine) when it already is and nobody observes the join.
    /// </summary>
    public ValueTask<Room> JoinAsync(string name, IRoomMember member, CancellationToken cancellationToken)
    {
        var room = Add(name, member);
        var opening = room.OpenFeed(_feeds);
        return opening is null && (room.Pattern is not null || _observers.Length == 0)
            ? new ValueTask<Room>(room)
            : JoinedAsync(room, member, opening, cancellationToken);
    }

    /// <summary>True when an observer (presence) is told the joins and leaves of <paramref name="room"/>.</summary>
    public bool IsObserved(string room)
    {
        foreach (var observer in _observers)
        {
            if (observer.Observes(room))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Adds each of <paramref name="members"/> to its room (<paramref name="names"/>, in the same order: a batch join's), and
    /// returns once every one of those rooms' feeds is open: the feeds not open yet and not being opened by another join
    /// are opened together (<see cref="IRoomFeedFactory.OpenManyAsync"/>: their subscriptions written at once, their last
    /// seqs asked in one batched ask; at most <see cref="MaxBatchOpens"/> batches at once on the worker); then the observers
    /// are told each join, as <see cref="JoinAsync"/> does. One entry
    /// per member, in order: its room, or why it could not be joined (the member is out of the room again). Throws only
    /// when <paramref name="cancellationToken"/> is cancelled; every member is then out of its room again.
    /// </summary>
    public async Task<RoomJoin[]> JoinManyAsync(IReadOnlyList<string> names, IReadOnlyList<IRoomMember> members, CancellationToken cancellationToken)
    {
        await _batchOpens.WaitAsync(cancellationToken);
        try
        {
            return await JoinManyOpeningAsync(names, members, cancellationToken);
        }
        finally
        {
            _batchOpens.Release();
        }
    }

    /// <summary><see cref="JoinManyAsync"/> with one of the worker's batch opens taken.</summary>
    private async Task<RoomJoin[]> JoinManyOpeningAsync(IReadOnlyList<string> names, IReadOnlyList<IRoomMember> members, CancellationToken cancellationToken)
    {
        var joins = new RoomJoin[members.Count];
        var openings = new Task<IAsyncDisposable>?[members.Count];
        List<Room>? claimed = null;
        List<TaskCompletionSource<IAsyncDisposable>>? claims = null;
        for (var i = 0; i < members.Count; i++)
        {
            var room = Add(names[i], members[i]);
            joins[i] = new RoomJoin(room, null);
            openings[i] = room.ClaimFeedOpen(out var claim);
            if (claim is not null)
            {
                (claimed ??= []).Add(room);
                (claims ??= []).Add(claim);
            }
        }

        var done = 0;
        Task? open = null;
        try
        {
            if (claimed is not null)
            {
                // Not cancelled with this batch: other joiners may be waiting for these feeds too.
                open = OpenClaimedAsync(claimed, claims!);
                await open.WaitAsync(cancellationToken);
            }

            for (; done < members.Count; done++)
            {
                var room = joins[done].Room!;
                var opened = false;
                try
                {
                    if (openings[done] is { } opening)
                    {
                        // The batch's own opens are done; only a feed another join opens may still be pending.
                        room.FeedOpened(opening, await opening.WaitAsync(cancellationToken));
                    }

                    opened = true;
                    foreach (var observer in room.Pattern is null ? _observers : [])
                    {
                        await observer.JoinedAsync(room.Name, members[done].User);
                    }
                }
                catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
                {
                    joins[done] = new RoomJoin(null, ex);
                    await (opened ? LeaveAsync(room, members[done]) : RemoveAsync(room, members[done]));
                }
            }
        }
        catch (Exception) when (cancellationToken.IsCancellationRequested)
        {
            // The connection is closing: none of these joins goes on; those told to the observers are left as such.
            // The batch's open goes on (bounded by the request timeout), and so does its place among the worker's batch
            // opens: leaving a room whose feed it opens waits for that open, but not when another connection is in the
            // room too, so a closed batch whose rooms were all shared would free its place early (more opens at once).
            // OpenClaimedAsync never throws; should it ever, the cancellation is still what goes on, and the members
            // below are still removed.
            if (open is not null)
            {
                try
                {
                    await open;
                }
                catch (Exception)
                {
                }
            }

            for (var i = 0; i < members.Count; i++)
            {
                if (joins[i].Room is { } room)
                {
                    await (i < done ? LeaveAsync(room, members[i]) : RemoveAsync(room, members[i]));
                }
            }

            throw;
        }

        return joins;
    }

    /// <summary>Opens the <paramref name="rooms"/>' feeds together and completes each room's claim with its outcome; never throws.</summary>
    private async Task OpenClaimedAsync(List<Room> rooms, List<TaskCompletionSource<IAsyncDisposable>> claims)
    {
        FeedOpen[] opens;
        try
        {
            opens = await _feeds.OpenManyAsync(rooms);
        }
        catch (Exception ex)
        {
            foreach (var claim in claims)
            {
                claim.TrySetException(ex);
            }

            return;
        }

        for (var i = 0; i < claims.Count; i++)
        {
            if (opens[i].Feed is { } feed)
            {
                claims[i].TrySetResult(feed);
            }
            else
            {
                claims[i].TrySetException(opens[i].Failure ?? new InvalidOperationException($"the feed of room '{rooms[i].Name}' was not opened"));
            }
        }
    }

    /// <summary>Adds <paramref name="member"/> to the room <paramref name="name"/>, active from now on if it was not.</summary>
    private Room Add(string name, IRoomMember member)
    {
        while (true)
        {
            var room = GetOrAdd(name);
            if (room.TryAdd(member))
            {
                return room;
            }

            // Its last member left a moment ago; drop the closed instance and take a fresh one.
            TryRemove(room);
        }
    }

    /// <summary>The rest of <see cref="JoinAsync"/>: awaits the feed's <paramref name="opening"/> (null: open), then tells the observers.</summary>
    // Pooled like the join that awaits it (RoomJoiner.JoinAsync).
    [System.Runtime.CompilerServices.AsyncMethodBuilder(typeof(System.Runtime.CompilerServices.PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<Room> JoinedAsync(Room room, IRoomMember member, Task<IAsyncDisposable>? opening, CancellationToken cancellationToken)
    {
        if (opening is not null)
        {
            try
            {
                room.FeedOpened(opening, await opening.WaitAsync(cancellationToken));
            }
            catch
            {
                await RemoveAsync(room, member);
                throw;
            }
        }

        foreach (var observer in room.Pattern is null ? _observers : [])
        {
            await observer.JoinedAsync(room.Name, member.User);
        }

        return room;
    }

    public async ValueTask LeaveAsync(Room room, IRoomMember member)
    {
        await RemoveAsync(room, member);
        foreach (var observer in room.Pattern is null ? _observers : [])
        {
            await observer.LeftAsync(room.Name, member.User);
        }
    }

    private async ValueTask RemoveAsync(Room room, IRoomMember member)
    {
        if (room.Remove(member))
        {
            TryRemove(room);
            await room.CloseFeedAsync();
        }
    }

    private Room GetOrAdd(string name)
    {
        lock (_gate)
        {
            if (!_rooms.TryGetValue(name, out var room))
            {
                room = new Room(name, _services);
                _rooms.Add(room);
            }

            return room;
        }
    }

    /// <summary>Removes <paramref name="room"/>, unless its name is already another (fresh) room's.</summary>
    private void TryRemove(Room room)
    {
        lock (_gate)
        {
            _rooms.Remove(room);
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var room in Snapshot())
        {
            await room.CloseFeedAsync();
        }

        lock (_gate)
        {
            _rooms.Clear();
        }
    }
}

/// <summary>One join of <see cref="RoomRegistry.JoinManyAsync"/>: the room joined, or why it could not be (<see cref="Failure"/>).</summary>
internal readonly record struct RoomJoin(Room? Room, Exception? Failure);
