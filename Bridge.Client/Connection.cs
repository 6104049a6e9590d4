using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using System.Threading.Channels;
using Bridge.Client.Protocol;
using Bridge.Contracts;
using MessagePack;
using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// One WebSocket connection of a <see cref="BridgeClient"/> (a reconnect makes a new one, with the next epoch): its
/// socket, its two loops (send, receive), the requests waiting for an answer on it, and how long its socket has
/// been silent.
/// </summary>
internal sealed class Connection : IDisposable
{
    // The largest frame accepted from the server: a 1 MiB stored message grows by 4/3 in base64, plus its envelope.
    private const int MaxReceiveBytes = 16 * 1024 * 1024;

    // Time for the close handshake when the client answers the server's close or refuses a frame.
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly CancellationTokenSource _cts;
    private readonly RequestIds _ids;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly TaskCompletionSource<WelcomeInfo> _welcome = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>
    /// Encoded frames for the send loop, in order. Unbounded on purpose: what goes in is bounded elsewhere (publishes
    /// by MaxQueuedPublishes, joins by the rooms held, requests by their awaiting callers), and a frame written under
    /// an owner's lock must never wait.
    /// </summary>
    private readonly Channel<byte[]> _outbound = Channel.CreateUnbounded<byte[]>(new UnboundedChannelOptions { SingleReader = true });

    // TimeProvider timestamp since which the receive loop has been waiting on the socket; 0 while it is handing a
    // frame on (which may wait for the application: that is not the socket's silence).
    private long _waitingSince;

    public Connection(int epoch, ClientWebSocket socket, Uri uri, RequestIds ids, TimeProvider time, ILogger logger, CancellationToken clientToken)
    {
        Epoch = epoch;
        Socket = socket;
        Uri = uri;
        Format = socket.SubProtocol is Subprotocols.MessagePack or Subprotocols.MessagePackBatch ? BridgeFormat.MessagePack : BridgeFormat.Json;
        Batched = socket.SubProtocol is Subprotocols.JsonBatch or Subprotocols.MessagePackBatch;
        _ids = ids;
        _time = time;
        _logger = logger;
        _cts = CancellationTokenSource.CreateLinkedTokenSource(clientToken);
        Token = _cts.Token;
        Requests = new RequestTracker(time);
    }

    public int Epoch { get; }

    public ClientWebSocket Socket { get; }

    public Uri Uri { get; }

    /// <summary>The subprotocol the server chose.</summary>
    public BridgeFormat Format { get; }

    /// <summary>A batch subprotocol: every server message is an array of envelopes (docs/protocol.md §1).</summary>
    public bool Batched { get; }

    /// <summary>Cancelled when the connection ends, for any reason.</summary>
    public CancellationToken Token { get; }

    /// <summary>Control requests (leave, sync, presence, refresh) waiting for their answer on this connection.</summary>
    public RequestTracker Requests { get; }

    /// <summary>Completes with the server's <c>welcome</c>; cancelled when the connection ends before it.</summary>
    public Task<WelcomeInfo> Welcome => _welcome.Task;

    public string? AbortReason { get; private set; }

    /// <summary>A request id ("c" and a number): unique within the client, matched against an error's <c>ref</c>.</summary>
    public string NextId() => _ids.Next();

    /// <summary>
    /// Paces this connection's frames within the worker's frame rate limit, from its <c>welcome</c>; null before the
    /// welcome and from a worker that does not announce it.
    /// </summary>
    public SendPacer? Pacer { get; private set; }

    /// <summary>Queues a frame for the send loop; never waits (see <see cref="_outbound"/>). It takes a token of the
    /// <see cref="Pacer"/> if there is one.</summary>
    public void Send(in OutboundFrame frame) => Send(FrameCodec.Encode(frame, Format));

    /// <summary>Queues an already encoded frame, taking a token of the <see cref="Pacer"/> if there is one.</summary>
    public void Send(byte[] encoded)
    {
        Pacer?.Debit();
        _outbound.Writer.TryWrite(encoded);
    }

    /// <summary>Queues a publish (encoded once for every attempt) that has taken its token of the <see cref="Pacer"/>.</summary>
    public void SendPaced(byte[] encoded) => _outbound.Writer.TryWrite(encoded);

    /// <summary>Registers a request and sends its frame; null when the connection has ended (ask the next one).</summary>
    public PendingRequest? TrySendRequest(RequestKind kind, string type, string? room, byte[]? payload)
    {
        var request = Requests.TryAdd(kind, NextId(), room);
        if (request is not null)
        {
            Send(new OutboundFrame(type, room, request.Id, payload));
        }

        return request;
    }

    public void OnWelcome(WelcomeInfo welcome)
    {
        if (Pacer is null && welcome is { FramesPerSecond: { } perSecond, FrameBurst: { } burst })
        {
            Pacer = new SendPacer(perSecond, burst, _time);
        }

        _welcome.TrySetResult(welcome);
    }

    /// <summary>
    /// How long the socket has said nothing while the client was waiting to read it: zero while the receive loop is
    /// handing a frame on, however long the application takes to make room for it. A connection that streams a long
    /// backlog to a slow reader is therefore never silent; a dead one is.
    /// </summary>
    public TimeSpan SilentFor(long now)
    {
        var since = Interlocked.Read(ref _waitingSince);
        return since == 0 ? TimeSpan.Zero : _time.GetElapsedTime(since, now);
    }

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

    public async Task SendLoopAsync()
    {
        var type = Format == BridgeFormat.Json ? WebSocketMessageType.Text : WebSocketMessageType.Binary;
        try
        {
            await foreach (var frame in _outbound.Reader.ReadAllAsync(Token).ConfigureAwait(false))
            {
                await Socket.SendAsync(frame, type, endOfMessage: true, Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException or InvalidOperationException)
        {
            Abort($"send failed: {ex.Message}");
        }
    }

    /// <summary>
    /// Reads frames until the connection ends and hands each to <paramref name="dispatch"/>, one at a time, in order.
    /// A dispatch that waits (a room's buffer is full) holds the next read back: the application's pace reaches the
    /// server through the socket, and nothing is dropped or buffered beyond the rooms' bounds.
    /// </summary>
    public async Task<EndInfo> ReceiveLoopAsync(Func<Connection, Envelope, ValueTask> dispatch)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(16 * 1024);
        var count = 0;
        try
        {
            while (true)
            {
                if (count == buffer.Length)
                {
                    if (buffer.Length >= MaxReceiveBytes)
                    {
                        await CloseQuietlyAsync(WebSocketCloseStatus.MessageTooBig).ConfigureAwait(false);
                        return new EndInfo { Reason = $"a frame from the server is larger than {MaxReceiveBytes} bytes" };
                    }

                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, count).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                Interlocked.Exchange(ref _waitingSince, _time.GetTimestamp());
                var result = await Socket.ReceiveAsync(buffer.AsMemory(count), Token).ConfigureAwait(false);
                Interlocked.Exchange(ref _waitingSince, 0);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await CloseQuietlyAsync(WebSocketCloseStatus.NormalClosure).ConfigureAwait(false);
                    return new EndInfo { CloseCode = (int?)Socket.CloseStatus, Reason = Socket.CloseStatusDescription };
                }

                count += result.Count;
                if (!result.EndOfMessage)
                {
                    continue;
                }

                Envelope? envelope = null;
                var envelopes = default(EnvelopeRun);
                try
                {
                    if (Batched)
                    {
                        // An element this client cannot read is skipped alone: the rest of the array still counts.
                        var bytes = count;
                        envelopes = FrameCodec.DecodeArray(buffer.AsMemory(0, count), Format, (index, ex) => _logger.ElementSkipped(index, bytes, ex));
                    }
                    else
                    {
                        envelope = FrameCodec.Decode(buffer.AsMemory(0, count), Format);
                    }
                }
                catch (Exception ex) when (FrameCodec.IsDecodeError(ex))
                {
                    // A frame this client cannot read (a newer server?): skip it rather than drop the connection.
                    _logger.FrameSkipped(count, ex);
                }

                count = 0;
                if (envelope?.Type is not null)
                {
                    await dispatch(this, envelope).ConfigureAwait(false);
                }

                // A batch's envelopes one at a time, in order, as if each had come alone.
                foreach (var one in envelopes)
                {
                    if (one.Type is not null)
                    {
                        await dispatch(this, one).ConfigureAwait(false);
                    }
                }
            }
        }
        catch (OperationCanceledException)
        {
            return new EndInfo { Reason = AbortReason ?? "closed" };
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or InvalidOperationException)
        {
            return new EndInfo { Reason = ex.Message };
        }
        finally
        {
            Interlocked.Exchange(ref _waitingSince, 0);
            ArrayPool<byte>.Shared.Return(buffer);
            _welcome.TrySetCanceled();
            Abort("closed");
        }
    }

    /// <summary>Starts the close handshake (the client is disposed): at most <see cref="CloseTimeout"/>.</summary>
    public Task CloseAsync() => CloseQuietlyAsync(WebSocketCloseStatus.NormalClosure, "client closed");

    private async Task CloseQuietlyAsync(WebSocketCloseStatus status, string? description = null)
    {
        try
        {
            using var timeout = new CancellationTokenSource(CloseTimeout);
            await Socket.CloseOutputAsync(status, description, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    public void Dispose()
    {
        _cts.Dispose();
        Socket.Dispose();
        Pacer?.Dispose();
    }
}

/// <summary>
/// What the server said in <c>welcome</c> (docs/protocol.md §4). <see cref="MaxFrameBytes"/>,
/// <see cref="MaxRoomsPerConnection"/>, <see cref="FramesPerSecond"/> and <see cref="FrameBurst"/>: the worker's limits
/// (positive), null from a worker that does not announce them (the frame rate: no worker before it, nor SSE).
/// </summary>
internal sealed record WelcomeInfo(
    string? ServerId, string? ConnectionId, string? User, int? MaxFrameBytes = null, int? MaxRoomsPerConnection = null, int? FramesPerSecond = null, int? FrameBurst = null)
{
    /// <summary>The largest frame the client sends on this connection: <paramref name="own"/>
    /// (<see cref="BridgeClientOptions.MaxFrameBytes"/>), or the worker's <see cref="MaxFrameBytes"/> when smaller
    /// (a larger frame: the worker closes with 1009).</summary>
    public int FrameLimit(int own) => Math.Min(own, MaxFrameBytes ?? own);
}

/// <summary>How a connection (or an attempt) ended.</summary>
internal sealed class EndInfo
{
    public int? CloseCode { get; init; }

    public int? HttpStatus { get; init; }

    public string? Reason { get; init; }

    /// <summary>The connection got as far as sending publishes: the next attempt starts the backoff over.</summary>
    public bool WasReady { get; set; }
}

/// <summary>Request ids of one client ("c1", "c2"...): joins and control requests, matched against errors' <c>ref</c>.</summary>
internal sealed class RequestIds
{
    private long _counter;

    public string Next() => "c" + Interlocked.Increment(ref _counter).ToString(System.Globalization.CultureInfo.InvariantCulture);
}
