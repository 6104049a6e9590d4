using System.Threading.Channels;

namespace Bridge.Client;

/// <summary>
/// A joined room. The client keeps it joined across reconnects, resuming from <see cref="Position"/>, and hands
/// its messages to <see cref="ReadAllAsync"/> once each, in <c>seq</c> order. Disposing it leaves the room.
/// </summary>
public sealed class RoomSubscription : IAsyncDisposable
{
    private readonly BridgeClient _client;

    internal RoomSubscription(BridgeClient client, string room, ulong? since, int capacity)
    {
        _client = client;
        Room = room;
        PositionValue = since;
        // Wait, not drop: a full buffer holds the socket's reader back (the server may then close with 4008 and the
        // client resumes), so no message is ever skipped silently.
        Messages = Channel.CreateBounded<BridgeMessage>(new BoundedChannelOptions(capacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleWriter = true,
        });
    }

    public string Room { get; }

    /// <summary>The <c>seq</c> of the last message handed to the buffer, or the last <c>room.joined</c> position:
    /// what a resume asks for with <c>since</c>. Null until the room is first joined (when joined without <c>since</c>).</summary>
    public ulong? Position
    {
        get
        {
            lock (_client.Gate)
            {
                return PositionValue;
            }
        }
    }

    /// <summary>The last <c>room.joined</c> (the first join, or the latest resume).</summary>
    public RoomJoinInfo? LastJoin { get; internal set; }

    /// <summary>
    /// Raised on every <c>room.joined</c>: the first join and each resume after a reconnect. When
    /// <see cref="RoomJoinInfo.Truncated"/> is true, messages after the resume point may be gone (retention): rebuild
    /// the room's state with <see cref="BridgeClient.SyncAsync"/>. Runs on the client's receive loop: keep it short.
    /// </summary>
    public event EventHandler<RoomJoinInfo>? Joined;

    /// <summary>
    /// The room's messages, each once, in <c>seq</c> order, across reconnects. Ends when the room is left or the
    /// client disposed; throws <see cref="BridgeException"/> when the client closes for good (e.g. <c>unauthorized</c>)
    /// or the server removes the room (<c>forbidden</c>). Read it from one consumer.
    /// </summary>
    public IAsyncEnumerable<BridgeMessage> ReadAllAsync(CancellationToken cancellationToken = default) =>
        Messages.Reader.ReadAllAsync(cancellationToken);

    /// <summary>Leaves the room.</summary>
    public async ValueTask DisposeAsync() => await _client.LeaveAsync(Room).ConfigureAwait(false);

    internal Channel<BridgeMessage> Messages { get; }

    // The fields below are guarded by BridgeClient.Gate.
    internal ulong? PositionValue { get; set; }

    /// <summary>Id of the join frame in flight on the current connection (matches an error's <c>ref</c>).</summary>
    internal string? JoinId { get; set; }

    /// <summary>The connection epoch the room's join was last sent on.</summary>
    internal int JoinEpoch { get; set; } = -1;

    internal int JoinFailures { get; set; }

    /// <summary>When a refused join (<c>unavailable</c>) is tried again (TimeProvider timestamp), or null.</summary>
    internal long? RetryJoinAt { get; set; }

    internal TaskCompletionSource FirstJoin { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal void RaiseJoined(RoomJoinInfo info)
    {
        LastJoin = info;
        Joined?.Invoke(this, info);
    }
}
