using System.Net.WebSockets;
using System.Threading.Channels;
using Bridge.Client.Protocol;

namespace Bridge.Client;

/// <summary>One WebSocket connection of a <see cref="BridgeClient"/>; a reconnect makes a new one (a new epoch).</summary>
internal sealed class Connection : IDisposable
{
    private readonly CancellationTokenSource _cts;

    public Connection(int epoch, ClientWebSocket socket, Uri uri, BridgeFormat format, CancellationToken clientToken)
    {
        Epoch = epoch;
        Socket = socket;
        Uri = uri;
        Format = format;
        MessageType = format == BridgeFormat.Json ? WebSocketMessageType.Text : WebSocketMessageType.Binary;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(clientToken);
        Token = _cts.Token;
    }

    public int Epoch { get; }

    public ClientWebSocket Socket { get; }

    public Uri Uri { get; }

    public BridgeFormat Format { get; }

    public WebSocketMessageType MessageType { get; }

    /// <summary>Cancelled when the connection ends, for any reason.</summary>
    public CancellationToken Token { get; }

    /// <summary>
    /// Encoded frames for the send loop, in order. Unbounded on purpose: what goes in is bounded elsewhere (publishes
    /// by MaxQueuedPublishes, joins by the rooms held, requests by their awaiting callers), and a frame written under
    /// the client's lock must never wait.
    /// </summary>
    public Channel<byte[]> Outbound { get; } = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });

    public TaskCompletionSource Welcome { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Guarded by BridgeClient.Gate.
    public bool Welcomed { get; set; }

    /// <summary>Welcomed and the rooms that join live are joined: publishes may go out.</summary>
    public bool Ready { get; set; }

    public Dictionary<string, TaskCompletionSource> LiveJoins { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, PendingRequest> Requests { get; } = new(StringComparer.Ordinal);

    public string? AbortReason { get; private set; }

    public void Enqueue(in OutboundFrame frame) => Outbound.Writer.TryWrite(FrameCodec.Encode(frame, Format));

    public void Enqueue(byte[] encoded) => Outbound.Writer.TryWrite(encoded);

    /// <summary>Ends the connection from the client's side (ack timeout, no welcome, a send failed).</summary>
    public void Abort(string reason)
    {
        AbortReason ??= reason;
        try
        {
            _cts.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    public void Dispose()
    {
        _cts.Dispose();
        Socket.Dispose();
    }
}

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

    public long SentAt { get; } = sentAt;

    public TaskCompletionSource<Envelope> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
}

/// <summary>A publish waiting for its ack: queued, in flight, or waiting to be retried.</summary>
internal sealed class PendingPublish(string room, string id, byte[] frame)
{
    public string Room { get; } = room;

    public string Id { get; } = id;

    /// <summary>The encoded frame, sent as is on every attempt (same id, so the server stores it once).</summary>
    public byte[] Frame { get; } = frame;

    public TaskCompletionSource<Ack> Completion { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Guarded by BridgeClient.Gate.
    /// <summary>The connection epoch it was last sent on; -1 when it still has to be (re)sent.</summary>
    public int SentEpoch { get; set; } = -1;

    public long SentAt { get; set; }

    public bool EverSent { get; set; }

    public int Failures { get; set; }

    /// <summary>After <c>publish_failed</c>: not before this TimeProvider timestamp.</summary>
    public long? RetryAt { get; set; }
}

/// <summary>How a connection (or an attempt) ended.</summary>
internal sealed class EndInfo
{
    public int? CloseCode { get; init; }

    public int? HttpStatus { get; init; }

    public string? Reason { get; init; }

    public bool WasReady { get; set; }
}
