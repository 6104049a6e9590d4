namespace Bridge.Worker.Rooms;

/// <summary>
/// A room active on this worker: its local members and its one live feed. Members are held in a
/// copy-on-write array so the fan-out path reads them without a lock.
/// </summary>
internal sealed class Room(string name)
{
    private readonly Lock _gate = new();
    private IRoomMember[] _members = [];
    private bool _closed;
    private Task<IAsyncDisposable>? _feed;

    public string Name { get; } = name;

    public int MemberCount => Volatile.Read(ref _members).Length;

    /// <summary>
    /// Stream sequence up to which this room's messages have been dispatched: set from the stream when the feed
    /// opens, then advanced by every dispatch. Read and written under <see cref="Gate"/> by the feed.
    /// </summary>
    public ulong LastSeq { get; set; }

    /// <summary>Serializes what dispatches into the room: the live feed, and gap fills after a reconnect.</summary>
    public SemaphoreSlim Gate { get; } = new(1, 1);

    /// <summary>Adds a member; false when the room is closing and the caller must look it up again.</summary>
    public bool TryAdd(IRoomMember member)
    {
        lock (_gate)
        {
            if (_closed)
            {
                return false;
            }

            if (Array.IndexOf(_members, member) < 0)
            {
                _members = [.. _members, member];
            }

            return true;
        }
    }

    /// <summary>Removes a member; true when it was the last one: the room is then closed for good.</summary>
    public bool Remove(IRoomMember member)
    {
        lock (_gate)
        {
            var index = Array.IndexOf(_members, member);
            if (index < 0)
            {
                return false;
            }

            var next = new IRoomMember[_members.Length - 1];
            Array.Copy(_members, 0, next, 0, index);
            Array.Copy(_members, index + 1, next, index, _members.Length - index - 1);
            _members = next;
            if (next.Length == 0)
            {
                _closed = true;
                return true;
            }

            return false;
        }
    }

    /// <summary>Opens the live feed once; every joiner awaits the same subscription, and a failed one is retried by the next joiner.</summary>
    public async ValueTask EnsureFeedAsync(IRoomFeedFactory factory, CancellationToken cancellationToken)
    {
        Task<IAsyncDisposable> feed;
        lock (_gate)
        {
            if (_feed is null || _feed.IsFaulted || _feed.IsCanceled)
            {
                // Not tied to one joiner's token: other joiners share this subscription.
                _feed = factory.OpenAsync(this, CancellationToken.None).AsTask();
            }

            feed = _feed;
        }

        await feed.WaitAsync(cancellationToken);
    }

    /// <summary>Closes the live feed (after the last member left).</summary>
    public async ValueTask CloseFeedAsync()
    {
        Task<IAsyncDisposable>? feed;
        lock (_gate)
        {
            feed = _feed;
            _feed = null;
        }

        if (feed is null)
        {
            return;
        }

        try
        {
            await (await feed).DisposeAsync();
        }
        catch (Exception) when (feed.IsFaulted || feed.IsCanceled)
        {
            // The subscription never opened; nothing to close.
        }
    }

    /// <summary>Fans one message out to every local member; called by the room's feed, one message at a time.</summary>
    public void Dispatch(RoomMessage message)
    {
        foreach (var member in Volatile.Read(ref _members))
        {
            member.Deliver(message);
        }
    }
}
