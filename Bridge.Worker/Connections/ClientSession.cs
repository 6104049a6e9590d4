using Bridge.Contracts;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;

namespace Bridge.Worker.Connections;

internal sealed record CloseRequest(int Code, string Reason);

/// <summary>
/// One client connection, whatever its transport: who it is, which rooms it is in, and its bounded send queue.
/// The transport pumps the queue to the wire and watches <see cref="Closing"/>.
/// </summary>
internal sealed class ClientSession
{
    private readonly CancellationTokenSource _closing = new();
    private readonly Dictionary<string, RoomMembership> _rooms = new(StringComparer.Ordinal);
    private CloseRequest? _closeRequest;
    private int _closeRequested;

    public ClientSession(string connectionId, string user, IFrameCodec codec, OutboundQueue queue)
    {
        ArgumentException.ThrowIfNullOrEmpty(connectionId);
        ArgumentException.ThrowIfNullOrEmpty(user);
        ArgumentNullException.ThrowIfNull(codec);
        ArgumentNullException.ThrowIfNull(queue);
        ConnectionId = connectionId;
        User = user;
        Codec = codec;
        Queue = queue;
    }

    public string ConnectionId { get; }

    public string User { get; }

    public IFrameCodec Codec { get; }

    public OutboundQueue Queue { get; }

    /// <summary>Rooms this connection is in. Touched only by the connection's receive loop and its final clean-up.</summary>
    public IDictionary<string, RoomMembership> Rooms => _rooms;

    /// <summary>Cancelled once the connection must close; <see cref="CloseRequested"/> says why.</summary>
    public CancellationToken Closing => _closing.Token;

    public CloseRequest? CloseRequested => Volatile.Read(ref _closeRequest);

    public void Deliver(RoomMessage message) => Send(message.GetFrame(Codec));

    public void Send(ControlFrame frame) => Send(Codec.EncodeControl(frame));

    public void SendError(string code, string message, string? reference) =>
        Send(ControlFrames.Error(code, message, reference));

    private void Send(byte[] frame)
    {
        if (!Queue.TryEnqueue(frame))
        {
            RequestClose(CloseCodes.SlowConsumer, "slow consumer: send queue full");
        }
    }

    /// <summary>Asks the transport to close; the first request wins and later ones are ignored.</summary>
    public bool RequestClose(int code, string reason)
    {
        if (Interlocked.Exchange(ref _closeRequested, 1) != 0)
        {
            return false;
        }

        Volatile.Write(ref _closeRequest, new CloseRequest(code, reason));
        Queue.Complete();
        _closing.Cancel();
        return true;
    }
}
