namespace Bridge.Client;

/// <summary>
/// A joined room or room pattern, from <see cref="BridgeClient.JoinAsync(string, RoomJoinOptions, CancellationToken)"/>.
/// The client keeps it joined across reconnects, resuming from <see cref="Position"/>, and hands its messages to
/// <see cref="ReadAllAsync"/> once each, in <c>seq</c> order (a pattern's: the messages of every room it matches, each
/// with its own <see cref="BridgeMessage.Room"/>, in stream order). Disposing it leaves the room.
/// </summary>
/// <remarks>
/// Buffering: the client holds at most <see cref="BridgeClientOptions.RoomBufferCapacity"/> messages of the room
/// that the application has not read yet. When that buffer is full the client stops reading its socket until the
/// application takes a message, so a slow reader slows the connection down (and with it every room of the client)
/// instead of growing memory or losing messages; the server keeps the rest (docs/protocol.md §5).
/// </remarks>
public sealed class RoomSubscription : IAsyncDisposable
{
    private readonly BridgeClient _client;

    internal RoomSubscription(BridgeClient client, string room, RoomJoinOptions options, RoomFeed feed)
    {
        _client = client;
        Room = room;
        Options = options;
        Feed = feed;
    }

    /// <summary>The room's name or the room pattern (<c>devices.site-3.*</c>), as given to <c>JoinAsync</c>
    /// (docs/protocol.md §2, §4).</summary>
    public string Room { get; }

    /// <summary>True when <see cref="Room"/> is a room pattern (it has a <c>*</c> or <c>&gt;</c> wildcard).</summary>
    public bool IsPattern => Contracts.RoomName.IsPattern(Room);

    /// <summary>The options it was joined with (the first <c>JoinAsync</c>'s; a later join of the same name returns
    /// this subscription and its options are ignored).</summary>
    public RoomJoinOptions Options { get; }

    /// <summary>
    /// The stream <c>seq</c> (unsigned 64-bit) of the last message put in the buffer (for a pattern, of any room it
    /// matches), or the last <c>room.joined</c> position if that is greater: what the next resume asks for with
    /// <c>since</c>. Null until the first <c>room.joined</c> when joined without <see cref="RoomJoinOptions.Since"/>
    /// (the latest values a <see cref="RoomJoinOptions.Latest"/> join gets before it do not move it), and always for a
    /// conflated join (<see cref="RoomJoinOptions.MaxRate"/>). Keep it to resume in a later process.
    /// </summary>
    public ulong? Position => Feed.Position;

    /// <summary>What the last <c>room.joined</c> said (the first join, the latest resume, or a later one the server
    /// sent on its own, see <see cref="Joined"/>); null until the first.</summary>
    public RoomJoinInfo? LastJoin => Feed.LastJoin;

    /// <summary>
    /// Raised on every <c>room.joined</c> of the room that comes after <see cref="BridgeClient.JoinAsync(string, RoomJoinOptions, CancellationToken)"/> returned
    /// (<see cref="LastJoin"/> holds the one it returned on): each resume after a reconnect, any the server sends
    /// for the room while it stays joined, and the first one when a long replay made JoinAsync return before it. When <see cref="RoomJoinInfo.Truncated"/> is true, messages
    /// between the client's position and <see cref="RoomJoinInfo.Seq"/> may be gone (retention dropped them before
    /// they reached this client): rebuild the room's state with <see cref="BridgeClient.SyncAsync"/>. Messages
    /// already in the buffer are still delivered. Runs on the client's receive loop: keep it short; an exception it
    /// throws is logged and ignored.
    /// </summary>
    public event EventHandler<RoomJoinInfo>? Joined;

    /// <summary>
    /// The room's messages, each once, in <c>seq</c> order, across reconnects (a <see cref="RoomJoinOptions.Latest"/>
    /// join's latest values first, one per room in no seq order; a conflated join's newest values, per room, in no
    /// order across rooms, after a reconnect only newer ones but for a pattern's rooms that changed since its last
    /// <c>room.joined</c>, whose newest value comes again: <see cref="RoomJoinOptions.MaxRate"/>). Ends when the room is left or the
    /// client disposed; throws <see cref="BridgeException"/> when the client closes for good (e.g.
    /// <c>unauthorized</c>), the server removes the room (<c>forbidden</c>), or its join fails for good; throws
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is cancelled. Read it from
    /// one consumer.
    /// </summary>
    public IAsyncEnumerable<BridgeMessage> ReadAllAsync(CancellationToken cancellationToken = default) =>
        Feed.Reader.ReadAllAsync(cancellationToken);

    /// <summary>Leaves the room (as <see cref="BridgeClient.LeaveAsync"/>), unless it was left already.</summary>
    public async ValueTask DisposeAsync() => await _client.LeaveCoreAsync(this, CancellationToken.None).ConfigureAwait(false);

    internal RoomFeed Feed { get; }

    /// <summary>
    /// A <c>room.joined</c>: updates the feed (position, <see cref="LastJoin"/>), tells the handlers, then lets a
    /// waiting <see cref="BridgeClient.JoinAsync(string, RoomJoinOptions, CancellationToken)"/> return: a handler added after it returned sees every later one,
    /// never the one it returned on.
    /// </summary>
    internal void OnJoined(RoomJoinInfo info, Action<Exception> handlerFailed)
    {
        Feed.OnJoined(info);
        try
        {
            Joined?.Invoke(this, info);
        }
        catch (Exception ex)
        {
            // An application handler's bug must not break the connection.
            handlerFailed(ex);
        }

        Feed.CompleteFirstJoin();
    }
}
