using System.Diagnostics;

namespace Bridge.Worker.Rooms;

/// <summary>
/// A room active on this worker, or a room pattern (<see cref="RoomSequence.Pattern"/>: a join with wildcards, whose feed carries the
/// messages of every room it matches, each with its own room): its local members, its one live feed and its
/// <see cref="Sequence"/> (the room object itself: <see cref="RoomSequence"/> is its base class, keeping its own state
/// private, so an active room is one object and one lock, not three). Members are
/// held in a set (a room that has had one member holds just it, and dispatches to it with no array); the fan-out path reads an
/// array snapshot of the set, rebuilt by the first dispatch after a change.
/// </summary>
/// <remarks>
/// Not copy-on-write per join: N members joining one room copied N²/2 references (1.4 GB of garbage, most of it
/// on the large-object heap, for 18,500 joins), which added ~11 KB of RSS per idle member until a full GC
/// (docs/benchmarks.md). Now a join or leave is O(1) and a burst of them costs one copy at the next message.
/// Members joined with <c>maxRate</c> are not in the snapshot: from their seam on they are in the room's
/// <see cref="ConflationGroup"/> of their rate, one per distinct rate, offered each message once for all its members.
/// </remarks>
internal sealed class Room : RoomSequence
{
    // The one member, while the room has had no other (most rooms, when a worker holds many): a set from the second
    // member on. A set of one cost ~200 B per active room.
    private IRoomMember? _only;
    // The set, its snapshot and the conflation groups: only from a second member or a first conflated one on (16 B
    // less per active room than their fields inline). Closed once its last member left: Crowd.Closed, which has neither
    // members nor groups (no count or flag beside it: 8 B less per active room).
    private Crowd? _crowd;
    // The task opening the live feed, then the feed once a joiner saw it open.
    private object? _feed;

    private readonly RoomServices _services;

    public Room(string name, RoomServices services)
        : base(Contracts.RoomName.IsPattern(name) && Security.RoomPattern.TryParse(name, out var pattern) ? pattern : null)
    {
        Name = name;
        _services = services;
    }

    internal override RoomServices Services => _services;

    /// <summary>The room's name, or the pattern's text: what members joined, and the key of the registry.</summary>
    public override string Name { get; }

    /// <summary>How many members the room has (under its lock: not for a hot path).</summary>
    public int MemberCount
    {
        get
        {
            lock (Gate)
            {
                return _crowd?.Members?.Count ?? (_only is null ? 0 : 1);
            }
        }
    }

    /// <summary>The room's position, gap fills and seams (its own base class): everything that dispatches goes through it.</summary>
    public RoomSequence Sequence => this;

    /// <summary>Adds a member; false when the room is closing and the caller must look it up again.</summary>
    public bool TryAdd(IRoomMember member)
    {
        lock (Gate)
        {
            if (ReferenceEquals(_crowd, Crowd.Closed))
            {
                return false;
            }

            if (AddMember(member))
            {
                _crowd?.Snapshot = null;
            }

            return true;
        }
    }

    /// <summary>Removes a member; true when it was the last one: the room is then closed for good.</summary>
    public bool Remove(IRoomMember member)
    {
        lock (Gate)
        {
            if (!RemoveMember(member))
            {
                return false;
            }

            _crowd?.Snapshot = null;
            if (member.Conflation is { Group: { } group } conflated && group.Remove(conflated) && _crowd is { } crowd)
            {
                crowd.Groups = [.. crowd.Groups.Where(g => g != group)];
            }

            if (_only is null && _crowd?.Members is not { Count: > 0 })
            {
                // Its last member: closed for good (a conflated last member's group went with it above).
                _crowd = Crowd.Closed;
                return true;
            }

            return false;
        }
    }

    /// <summary>
    /// Called at a conflated member's seam under the gate (every dispatch takes it): puts it in the room's group of its
    /// rate, created with the first member of that rate. Nothing dispatched before is the member's to send.
    /// </summary>
    internal override void StartConflating(IRoomMember member)
    {
        if (member.Conflation is not { Group: null } conflated || !IsMember(member))
        {
            return; // not conflated, already in its group, or left
        }

        var crowd = _crowd ??= new Crowd();
        var group = GroupOf(crowd, conflated.Rate);
        if (group is null)
        {
            group = new ConflationGroup(Name, conflated.Rate, conflated.Time, _services.Logger);
            crowd.Groups = [.. crowd.Groups, group];
        }

        group.Add(conflated);
    }

    /// <summary>The group of members conflated at <paramref name="rate"/>, if any (a loop, not a lambda: no closure per join).</summary>
    private static ConflationGroup? GroupOf(Crowd crowd, double rate)
    {
        foreach (var group in crowd.Groups)
        {
            if (group.Rate.Equals(rate))
            {
                return group;
            }
        }

        return null;
    }

    /// <summary>The room's conflation groups (for tests).</summary>
    internal IReadOnlyList<ConflationGroup> ConflationGroups
    {
        get
        {
            lock (Gate)
            {
                return _crowd?.Groups ?? [];
            }
        }
    }

    /// <summary>Takes <paramref name="member"/> out of the room (its registry closes the room after the last one).</summary>
    public ValueTask LeaveAsync(IRoomMember member) => _services.Registry.LeaveAsync(this, member);

    /// <summary>
    /// Opens the live feed once: null when it is open, else the open every joiner awaits (then hands to
    /// <see cref="FeedOpened"/>); a failed one is retried by the next joiner. Not an async method: the registry's join
    /// awaits the open itself, and a join of a room whose feed is open needs no state machine at all.
    /// </summary>
    public Task<IAsyncDisposable>? OpenFeed(IRoomFeedFactory factory) => StartOpen(factory, out _);

    /// <summary>
    /// As <see cref="OpenFeed"/>, for a batch's joins (<see cref="RoomRegistry.JoinManyAsync"/>): a feed
    /// that must be opened is not opened here but <paramref name="claim"/>ed by the caller, which opens it with the batch's
    /// other rooms and completes the claim with the outcome; other joiners await the claim's task meanwhile.
    /// </summary>
    public Task<IAsyncDisposable>? ClaimFeedOpen(out TaskCompletionSource<IAsyncDisposable>? claim) => StartOpen(null, out claim);

    private Task<IAsyncDisposable>? StartOpen(IRoomFeedFactory? factory, out TaskCompletionSource<IAsyncDisposable>? claim)
    {
        claim = null;
        lock (Gate)
        {
            if (_feed is IAsyncDisposable)
            {
                return null;
            }

            if (_feed is not Task<IAsyncDisposable> pending || pending.IsFaulted || pending.IsCanceled)
            {
                if (factory is null)
                {
                    claim = new TaskCompletionSource<IAsyncDisposable>(TaskCreationOptions.RunContinuationsAsynchronously);
                    _feed = pending = claim.Task;
                }
                else
                {
                    // Not tied to one joiner's token: other joiners share this subscription.
                    _feed = pending = factory.OpenAsync(this, CancellationToken.None).AsTask();
                }
            }

            return pending;
        }
    }

    /// <summary>The open <paramref name="opening"/> (from <see cref="OpenFeed"/>) ended with the feed <paramref name="opened"/>.</summary>
    public void FeedOpened(Task<IAsyncDisposable> opening, IAsyncDisposable opened)
    {
        lock (Gate)
        {
            // The feed itself from now on, not the task that opened it (its state machine is ~180 B per active room).
            if (ReferenceEquals(_feed, opening))
            {
                _feed = opened;
            }
        }
    }

    /// <summary>Closes the live feed (after the last member left).</summary>
    public async ValueTask CloseFeedAsync()
    {
        object? feed;
        lock (Gate)
        {
            feed = _feed;
            _feed = null;
        }

        if (feed is IAsyncDisposable opened)
        {
            await opened.DisposeAsync();
            return;
        }

        if (feed is not Task<IAsyncDisposable> opening)
        {
            return;
        }

        try
        {
            await (await opening).DisposeAsync();
        }
        catch (Exception) when (opening.IsFaulted || opening.IsCanceled)
        {
            // The subscription never opened; nothing to close.
        }
    }

    /// <summary>
    /// Fans one message out to every local member; called by <see cref="Sequence"/>, one message at a time. One member
    /// that throws does not cost the others the message (issue 12): every member gets its turn, then the failures
    /// are thrown together for the sequence to log. <paramref name="afterGap"/>: the first message after a hole retention
    /// made before a gap fill read it (<see cref="IRoomMember.DeliverAfterGap"/>).
    /// </summary>
    public override void Dispatch(RoomMessage message, bool afterGap = false)
    {
        Debug.Assert(Monitor.IsEntered(Gate), "the room's gate is held by its caller (the sequence's dispatch)");
        List<Exception>? failures = null;
        DispatchToMembers(message, afterGap, ref failures);

        if (failures is not null)
        {
            throw new AggregateException($"delivering message {message.Seq} of room '{Name}' failed for {failures.Count} member(s)", failures);
        }
    }

    /// <summary>Under the lock: every unconflated member's turn, then one offer per conflation group.</summary>
    private void DispatchToMembers(RoomMessage message, bool afterGap, ref List<Exception>? failures)
    {
        var crowd = _crowd;
        if (crowd?.Members is null)
        {
            // One member (or none): no snapshot array to build and keep (32 B per active room).
            if (_only is { Conflation: null } only)
            {
                Deliver(only, message, afterGap, ref failures);
            }
        }
        else
        {
            foreach (var member in crowd.Snapshot ??= [.. crowd.Members.Where(m => m.Conflation is null)])
            {
                Deliver(member, message, afterGap, ref failures);
            }
        }

        if (crowd is null)
        {
            return;
        }

        // Conflated members: one offer per distinct rate (a gap's notice is not theirs: IRoomMember.DeliverAfterGap).
        foreach (var group in crowd.Groups)
        {
            group.Offer(message, ref failures);
        }
    }

    /// <summary>One member's turn: a member that throws is added to <paramref name="failures"/>, and the others still get theirs.</summary>
    private static void Deliver(IRoomMember member, RoomMessage message, bool afterGap, ref List<Exception>? failures)
    {
        try
        {
            if (afterGap)
            {
                member.DeliverAfterGap(message);
            }
            else
            {
                member.Deliver(message);
            }
        }
        catch (Exception ex)
        {
            (failures ??= []).Add(ex);
        }
    }

    /// <summary>Under the lock: false when <paramref name="member"/> is in the room already.</summary>
    private bool AddMember(IRoomMember member)
    {
        if (_crowd?.Members is { } members)
        {
            return members.Add(member);
        }

        if (_only is null)
        {
            _only = member;
            return true;
        }

        if (ReferenceEquals(_only, member))
        {
            return false;
        }

        (_crowd ??= new Crowd()).Members = new HashSet<IRoomMember>(ReferenceEqualityComparer.Instance) { _only, member };
        _only = null;
        return true;
    }

    /// <summary>Under the lock: true when <paramref name="member"/> is in the room.</summary>
    private bool IsMember(IRoomMember member) => _crowd?.Members?.Contains(member) ?? ReferenceEquals(_only, member);

    /// <summary>Under the lock: false when <paramref name="member"/> was not in the room.</summary>
    private bool RemoveMember(IRoomMember member)
    {
        if (_crowd?.Members is { } members)
        {
            return members.Remove(member);
        }

        if (!ReferenceEquals(_only, member))
        {
            return false;
        }

        _only = null;
        return true;
    }

    /// <summary>True once the room keeps a member set or conflation groups (for tests: a room of one plain member keeps neither).</summary>
    internal bool HasCrowd
    {
        get
        {
            lock (Gate)
            {
                return _crowd is not null && !ReferenceEquals(_crowd, Crowd.Closed);
            }
        }
    }

    /// <summary>
    /// What a room has only once it had a second member or a conflated one: the member set (from the second member on;
    /// null while the room has only conflated members' groups besides its one member), the set's unconflated members as
    /// an array (rebuilt by the first dispatch after a change), and one <see cref="ConflationGroup"/> per distinct
    /// <c>maxRate</c> among the members past their seam. Changed and read under the gate (dispatch holds it).
    /// </summary>
    private sealed class Crowd
    {
        /// <summary>
        /// A closed room's: no members and no groups. Never written: adding to a closed room stops before it, removing
        /// finds no member in it, and a dispatch (a last message still coming) reads an empty room.
        /// </summary>
        public static readonly Crowd Closed = new();

        public HashSet<IRoomMember>? Members { get; set; }

        public IRoomMember[]? Snapshot { get; set; }

        public ConflationGroup[] Groups { get; set; } = [];
    }
}
