using Bridge.Client.Protocol;

namespace Bridge.Client;

internal enum RequestKind
{
    Leave,
    Sync,
    Presence,
    Refresh,
}

/// <summary>A control request waiting for its answer on one connection.</summary>
internal sealed class PendingRequest(RequestKind kind, string id, string? room, long sentAt)
{
    public RequestKind Kind { get; } = kind;

    public string Id { get; } = id;

    public string? Room { get; } = room;

    /// <summary>TimeProvider timestamp of the send.</summary>
    public long SentAt { get; } = sentAt;

    public Task<Envelope> Answer => Completion.Task;

    internal TaskCompletionSource<Envelope> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>
/// The control requests of one connection waiting for their answer, matched by id (<c>presence.state</c>,
/// <c>auth.refreshed</c>, an error's <c>ref</c>) or, for answers that do not echo the id (<c>room.state</c>,
/// <c>room.left</c>), by room, oldest first (docs/protocol.md §12). When the connection ends, every request still
/// waiting fails with <c>disconnected</c> and no new one is taken.
/// </summary>
internal sealed class RequestTracker(TimeProvider time)
{
    private readonly Lock _lock = new();

    // In send order, so "oldest first" is the first match. Few at a time: a linear search is the cheapest.
    private readonly List<PendingRequest> _pending = [];
    private bool _closed;

    /// <summary>Registers a request; null when the connection has ended.</summary>
    public PendingRequest? TryAdd(RequestKind kind, string id, string? room)
    {
        var request = new PendingRequest(kind, id, room, time.GetTimestamp());
        lock (_lock)
        {
            if (_closed)
            {
                return null;
            }

            _pending.Add(request);
        }

        return request;
    }

    /// <summary>Answers the request with <paramref name="id"/>; false when none waits.</summary>
    public bool Complete(string? id, Envelope answer) => Take(r => r.Id == id)?.Completion.TrySetResult(answer) ?? false;

    /// <summary>Answers the oldest request of <paramref name="kind"/> for <paramref name="room"/>; false when none waits.</summary>
    public bool CompleteOldest(RequestKind kind, string room, Envelope answer) =>
        Take(r => r.Kind == kind && r.Room == room)?.Completion.TrySetResult(answer) ?? false;

    /// <summary>Fails the request an error refers to (its <c>ref</c>); false when none waits.</summary>
    public bool TryFail(string reference, BridgeException error) => Take(r => r.Id == reference)?.Completion.TrySetException(error) ?? false;

    /// <summary>The oldest request still waiting, or null.</summary>
    public PendingRequest? Oldest()
    {
        lock (_lock)
        {
            return _pending.Count > 0 ? _pending[0] : null;
        }
    }

    /// <summary>The connection ended: fails every waiting request with <c>disconnected</c> and takes no new one.</summary>
    public void Close()
    {
        List<PendingRequest> failed;
        lock (_lock)
        {
            _closed = true;
            failed = [.. _pending];
            _pending.Clear();
        }

        foreach (var request in failed)
        {
            request.Completion.TrySetException(new BridgeException("disconnected", "the connection ended before the answer came", request.Id));
        }
    }

    private PendingRequest? Take(Predicate<PendingRequest> match)
    {
        lock (_lock)
        {
            var index = _pending.FindIndex(match);
            if (index < 0)
            {
                return null;
            }

            var request = _pending[index];
            _pending.RemoveAt(index);
            return request;
        }
    }
}
