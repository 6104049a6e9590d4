using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Bridge.Contracts;
using MessagePack;

namespace Bridge.Testing;

/// <summary>A frame as a client sees it, decoded with library code independent of the worker's codecs.</summary>
public sealed class Frame
{
    public required JsonObject Json { get; init; }

    /// <summary>For msgpack clients: the frame as MessagePack decoded it (bin stays byte[]).</summary>
    public IDictionary<object, object?>? MsgPack { get; init; }

    /// <summary>The frame's bytes as they arrived (on a batch subprotocol, the envelope's bytes within its array).</summary>
    public byte[] Raw { get; init; } = [];

    /// <summary>Which WebSocket message (from 1) brought the frame: on a batch subprotocol, several frames share one.</summary>
    public long Message { get; init; }

    /// <summary>The length of that whole WebSocket message (on a batch subprotocol, its array with every envelope in it).</summary>
    public int MessageBytes { get; init; }

    /// <summary>For msgpack clients: the bytes of the <c>payload</c> value exactly as the frame holds them; null without one.</summary>
    public byte[]? RawMsgPackPayload()
    {
        var reader = new MessagePackReader(Raw);
        var entries = reader.ReadMapHeader();
        for (var i = 0; i < entries; i++)
        {
            var key = reader.ReadString();
            if (key == "payload")
            {
                return System.Buffers.BuffersExtensions.ToArray(reader.ReadRaw());
            }

            reader.Skip();
        }

        return null;
    }

    public string? Type => Json["type"]?.GetValue<string>();

    public string? Room => Json["room"]?.GetValue<string>();

    public string? Id => Json["id"]?.GetValue<string>();

    public ulong Seq => Json["seq"]?.GetValue<ulong>() ?? 0;

    public JsonNode? Payload => Json["payload"];

    public string? ErrorCode => Type == MessageTypes.Error ? Payload?["code"]?.GetValue<string>() : null;

    public override string ToString() => Json.ToJsonString();
}

/// <summary>Handed each whole message in raw mode; <paramref name="frame"/> is valid only during the call.</summary>
public delegate void FrameHandler(ReadOnlyMemory<byte> frame, WebSocketMessageType type);

/// <summary>How a <see cref="TestClient"/> connects and what it does with the frames it receives.</summary>
public sealed class TestClientOptions
{
    /// <summary>
    /// <c>bridge.v1.json</c>, <c>bridge.v1.msgpack</c>, their batch forms (<c>bridge.v1.json-batch</c>,
    /// <c>bridge.v1.msgpack-batch</c>), or null to offer none (or set your own in <see cref="Configure"/>).
    /// </summary>
    public string? Subprotocol { get; init; } = Subprotocols.Json;

    /// <summary>Sent as the <c>access_token</c> query parameter; none when null.</summary>
    public string? Token { get; init; }

    /// <summary>False: nothing is read until <see cref="TestClient.StartReading"/> (a client that does not read).</summary>
    public bool StartReading { get; init; } = true;

    /// <summary>When set, the TCP receive buffer of the client socket: a small one makes a client that stops reading
    /// back up the server quickly.</summary>
    public int? ReceiveBufferBytes { get; init; }

    /// <summary>The read buffer's first size (it doubles for a longer message): small for many idle connections.</summary>
    public int ReadBufferBytes { get; init; } = 64 * 1024;

    /// <summary>The HTTP handler to connect through (e.g. one binding spread source addresses); ignored with <see cref="ReceiveBufferBytes"/>.</summary>
    public HttpMessageInvoker? Invoker { get; init; }

    /// <summary>Changes the socket's options before it connects (headers, keep-alive, response details).</summary>
    public Action<ClientWebSocketOptions>? Configure { get; init; }

    /// <summary>How long the upgrade may take; no limit but the caller's token when null.</summary>
    public TimeSpan? ConnectTimeout { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Raw mode, for clients that must stay cheap (the load harness): every envelope goes here (a whole message, or on
    /// a batch subprotocol each envelope of the message's array, in order), on the read loop, and is neither decoded
    /// nor queued (<see cref="TestClient.NextAsync"/> then sees nothing). If it throws, the
    /// connection is aborted and the exception kept in <see cref="TestClient.FrameHandlerError"/>.
    /// </summary>
    public FrameHandler? OnFrame { get; init; }

    /// <summary>Called once the connection has ended (close frame, drop or abort).</summary>
    public Action<TestClient>? OnClosed { get; init; }
}

/// <summary>
/// The raw protocol client of the tests and the load harness: a real <see cref="ClientWebSocket"/> speaking either
/// subprotocol that sends whatever bytes it is given (well-formed envelopes or deliberately broken ones) and reads
/// every frame, decoded with library code independent of the worker's codecs (<see cref="Frame"/>) and queued for
/// the <c>WaitFor</c> methods, or handed raw to <see cref="TestClientOptions.OnFrame"/>. It never reconnects: the
/// shipped client (Bridge.Client) is the one that does.
/// </summary>
public sealed class TestClient : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly TestClientOptions _options;
    private readonly Channel<Frame> _frames = Channel.CreateUnbounded<Frame>();
    private readonly TaskCompletionSource<WebSocketCloseStatus?> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _firstFrame = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _reader;
    private Exception? _readError;
    private Exception? _frameHandlerError;
    private long _messages;

    private TestClient(ClientWebSocket socket, TestClientOptions options)
    {
        _socket = socket;
        _options = options;
        // What the server chose (it may differ from Subprotocol when Configure offers several); none offered is JSON.
        var chosen = socket.SubProtocol ?? options.Subprotocol;
        IsMsgPack = chosen is Subprotocols.MessagePack or Subprotocols.MessagePackBatch;
        IsBatched = chosen is Subprotocols.JsonBatch or Subprotocols.MessagePackBatch;
    }

    /// <summary>True when connected with a batch subprotocol: every server message is an array of envelopes, split here.</summary>
    public bool IsBatched { get; }

    /// <summary>WebSocket messages received (not counting the close): on a batch subprotocol, fewer than the frames.</summary>
    public long MessagesReceived => Interlocked.Read(ref _messages);

    /// <summary>A pause after each frame read: a client that reads, but slower than its rooms publish.</summary>
    public TimeSpan ReadDelay { get; set; }

    /// <summary>The reason of the server's close frame, once closed.</summary>
    public string? CloseReason => _socket.CloseStatusDescription;

    /// <summary>The close code the server sent, once it closed the connection; null before, or after a drop.</summary>
    public int? CloseStatus => (int?)_socket.CloseStatus;

    /// <summary>True when connected with <c>bridge.v1.msgpack</c> (or its batch form): envelopes are sent as MessagePack, in binary frames.</summary>
    public bool IsMsgPack { get; }

    public bool IsOpen => _socket.State == WebSocketState.Open;

    /// <summary>
    /// What <see cref="TestClientOptions.OnFrame"/> threw, if it did: the read loop then stops and the connection is
    /// aborted (the server sees a dropped client, not one that stopped reading), and <see cref="Closed"/> completes.
    /// </summary>
    public Exception? FrameHandlerError => Volatile.Read(ref _frameHandlerError);

    public WebSocket Socket => _socket;

    /// <summary>Completes with the close status the server sent (null when the connection dropped without one).</summary>
    public Task<WebSocketCloseStatus?> Closed => _closed.Task;

    /// <summary>Completes when the first frame (the worker's <c>welcome</c>) arrived; faults if the connection ended first.</summary>
    public Task FirstFrame => _firstFrame.Task;

    /// <param name="receiveBufferBytes">When set, the TCP receive buffer of the client socket: a small one makes a
    /// client that stops reading back up the server quickly.</param>
    public static Task<TestClient> ConnectAsync(
        Uri url, string? subprotocol = null, bool startReading = true, int? receiveBufferBytes = null,
        Action<ClientWebSocketOptions>? configure = null) =>
        ConnectAsync(url, new TestClientOptions
        {
            Subprotocol = subprotocol,
            StartReading = startReading,
            ReceiveBufferBytes = receiveBufferBytes,
            Configure = configure,
        });

    /// <summary>Connects (throws what <see cref="ClientWebSocket.ConnectAsync(Uri, CancellationToken)"/> throws on a refused upgrade).</summary>
    public static async Task<TestClient> ConnectAsync(Uri url, TestClientOptions options, CancellationToken cancellationToken = default)
    {
        var socket = new ClientWebSocket();
        try
        {
            options.Configure?.Invoke(socket.Options);
            if (options.Subprotocol is not null)
            {
                socket.Options.AddSubProtocol(options.Subprotocol);
            }

            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            if (options.ConnectTimeout is { } limit)
            {
                timeout.CancelAfter(limit);
            }

            url = Tokens.WithToken(url, options.Token);
            if (options.ReceiveBufferBytes is { } size)
            {
                using var handler = new SocketsHttpHandler { ConnectCallback = SmallBufferConnect(size) };
                await socket.ConnectAsync(url, new HttpMessageInvoker(handler, disposeHandler: false), timeout.Token);
            }
            else if (options.Invoker is { } invoker)
            {
                await socket.ConnectAsync(url, invoker, timeout.Token);
            }
            else
            {
                await socket.ConnectAsync(url, timeout.Token);
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var client = new TestClient(socket, options);
        if (options.StartReading)
        {
            client.StartReading();
        }

        return client;
    }

    /// <summary>A connect callback for a socket whose TCP receive buffer is <paramref name="size"/> bytes.</summary>
    internal static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> SmallBufferConnect(int size) => async (context, ct) =>
    {
        var s = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp)
        {
            ReceiveBufferSize = size,
            NoDelay = true,
        };
        try
        {
            await s.ConnectAsync(context.DnsEndPoint, ct);
            return new System.Net.Sockets.NetworkStream(s, ownsSocket: true);
        }
        catch
        {
            s.Dispose();
            throw;
        }
    };

    public void StartReading() => _reader ??= Task.Run(ReadLoopAsync);

    /// <summary>Drops the connection without a close handshake, like a network failure.</summary>
    public void Abort() => _socket.Abort();

    private void OnEnvelope(ReadOnlyMemory<byte> envelope, WebSocketMessageType type, long message, int messageBytes)
    {
        if (_options.OnFrame is { } onFrame)
        {
            try
            {
                onFrame(envelope, type);
            }
            catch (Exception ex)
            {
                // A handler that throws would otherwise leave an open socket nobody reads: the server sees a
                // stalled client and the caller silently stops counting. Drop the connection instead.
                Volatile.Write(ref _frameHandlerError, ex);
                _socket.Abort();
                throw;
            }
        }
        else
        {
            _frames.Writer.TryWrite(Decode(envelope.ToArray(), message, messageBytes));
        }
    }

    private async Task ReadLoopAsync()
    {
        var buffer = new byte[_options.ReadBufferBytes];
        var ranges = new List<Range>();
        try
        {
            while (true)
            {
                var count = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    if (count == buffer.Length)
                    {
                        Array.Resize(ref buffer, buffer.Length * 2);
                    }

                    result = await _socket.ReceiveAsync(buffer.AsMemory(count), CancellationToken.None);
                    count += result.Count;
                }
                while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    _closed.TrySetResult(_socket.CloseStatus);
                    if (_socket.State == WebSocketState.CloseReceived)
                    {
                        await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None);
                    }

                    break;
                }

                _firstFrame.TrySetResult();
                var message = Interlocked.Increment(ref _messages);
                if (IsBatched)
                {
                    ranges.Clear();
                    EnvelopeArray.Split(buffer.AsMemory(0, count), IsMsgPack, ranges);
                    foreach (var range in ranges)
                    {
                        OnEnvelope(buffer.AsMemory(0, count)[range], result.MessageType, message, count);
                    }
                }
                else
                {
                    OnEnvelope(buffer.AsMemory(0, count), result.MessageType, message, count);
                }

                if (ReadDelay > TimeSpan.Zero)
                {
                    await Task.Delay(ReadDelay);
                }
            }
        }
        catch (Exception ex)
        {
            _readError = ex;
            _closed.TrySetResult(null);
        }
        finally
        {
            _frames.Writer.TryComplete();
            _firstFrame.TrySetException(new WebSocketException($"closed before the first frame ({CloseStatus?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "no close frame"})"));
            _options.OnClosed?.Invoke(this);
        }
    }

    private Frame Decode(byte[] data, long message, int messageBytes)
    {
        if (!IsMsgPack)
        {
            return new Frame { Json = JsonNode.Parse(data)!.AsObject(), Raw = data, Message = message, MessageBytes = messageBytes };
        }

        // ConvertToJson writes control characters in strings as they are; JSON needs them escaped.
        var json = string.Concat(MessagePackSerializer.ConvertToJson(data).Select(c => c < ' ' ? $"\\u{(int)c:x4}" : c.ToString()));
        Dictionary<object, object?>? map;
        try
        {
            map = MessagePackSerializer.Deserialize<Dictionary<object, object?>>(data);
        }
        catch (MessagePackSerializationException)
        {
            map = null; // an extension type the typeless reader does not know: Raw still has it
        }

        JsonObject envelope;
        try
        {
            envelope = JsonNode.Parse(json)!.AsObject();
        }
        catch (JsonException) when (map is not null)
        {
            // A payload without a JSON form (a backend's NaN, a non-str key): the envelope's scalar fields only.
            var scalars = map.Where(e => e.Key is string && e.Value is string or long or ulong or int or uint or byte or ushort or short or sbyte)
                .ToDictionary(e => (string)e.Key, e => e.Value);
            envelope = JsonNode.Parse(JsonSerializer.Serialize(scalars))!.AsObject();
        }

        return new Frame { Json = envelope, MsgPack = map, Raw = data, Message = message, MessageBytes = messageBytes };
    }

    /// <summary>Sends an envelope in this client's format. Values: strings, numbers, bools, byte[] (msgpack bin), nested dictionaries.</summary>
    public Task SendAsync(Dictionary<string, object?> envelope)
    {
        var bytes = IsMsgPack
            ? MessagePackSerializer.Serialize(envelope)
            : JsonSerializer.SerializeToUtf8Bytes(envelope);
        return SendRawAsync(bytes);
    }

    public Task JoinAsync(string room) => SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room });

    /// <summary>Joins and waits for <c>room.joined</c>.</summary>
    public async Task JoinAndWaitAsync(string room)
    {
        await JoinAsync(room);
        await WaitForAsync(f => f.Type == MessageTypes.RoomJoined && f.Room == room);
    }

    public Task PublishAsync(string room, object? payload, string type = "chat.message", string? id = null)
    {
        var envelope = new Dictionary<string, object?> { ["type"] = type, ["room"] = room, ["payload"] = payload };
        if (id is not null)
        {
            envelope["id"] = id;
        }

        return SendAsync(envelope);
    }

    /// <summary>Sends <paramref name="bytes"/> as they are, as one message (of this client's format's type unless given); 10 s at most.</summary>
    public async Task SendRawAsync(byte[] bytes, WebSocketMessageType? type = null)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await SendRawAsync(bytes, type ?? (IsMsgPack ? WebSocketMessageType.Binary : WebSocketMessageType.Text), cts.Token);
    }

    public Task SendRawAsync(ReadOnlyMemory<byte> bytes, WebSocketMessageType type, CancellationToken cancellationToken) =>
        _socket.SendAsync(bytes, type, true, cancellationToken).AsTask();

    /// <summary>
    /// Sends <paramref name="bytes"/> as one message of <paramref name="type"/>, as <see cref="SendRawAsync(ReadOnlyMemory{byte}, WebSocketMessageType, CancellationToken)"/>
    /// without a task of its own; the caller may reuse the memory once it completes (a load client's frame buffer).
    /// </summary>
    public ValueTask SendFrameAsync(ReadOnlyMemory<byte> bytes, WebSocketMessageType type, CancellationToken cancellationToken) =>
        _socket.SendAsync(bytes, type, true, cancellationToken);

    /// <summary>Sends an envelope written as JSON text; on the MessagePack subprotocol, the same map as MessagePack.</summary>
    public Task SendJsonAsync(string json, CancellationToken cancellationToken) =>
        IsMsgPack
            ? SendRawAsync(MessagePackSerializer.ConvertFromJson(json, cancellationToken: cancellationToken), WebSocketMessageType.Binary, cancellationToken)
            : SendRawAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, cancellationToken);

    /// <summary>The next frame, whatever it is.</summary>
    public async Task<Frame> NextAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            return await _frames.Reader.ReadAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("no frame arrived in time");
        }
        catch (ChannelClosedException)
        {
            throw new InvalidOperationException($"connection closed ({_socket.CloseStatus}: {_socket.CloseStatusDescription})", _readError);
        }
    }

    /// <summary>Skips frames until one matches.</summary>
    public async Task<Frame> WaitForAsync(Func<Frame, bool> match, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var left = deadline - DateTime.UtcNow;
            if (left <= TimeSpan.Zero)
            {
                throw new TimeoutException("the expected frame did not arrive in time");
            }

            var frame = await NextAsync(left);
            if (match(frame))
            {
                return frame;
            }
        }
    }

    /// <summary>Collects the next <paramref name="count"/> frames matching <paramref name="match"/>.</summary>
    public async Task<List<Frame>> CollectAsync(int count, Func<Frame, bool> match, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        var frames = new List<Frame>(count);
        while (frames.Count < count)
        {
            try
            {
                frames.Add(await WaitForAsync(match, deadline - DateTime.UtcNow));
            }
            catch (TimeoutException ex)
            {
                var seqs = frames.Select(f => f.Seq).ToList();
                throw new TimeoutException(
                    $"got {frames.Count} of {count} frames in time; the last seqs: {string.Join(",", seqs.TakeLast(10))}; " +
                    $"out of order: {seqs.Zip(seqs.Skip(1)).Count(p => p.Second <= p.First)}", ex);
            }
        }

        return frames;
    }

    /// <summary>True when no frame matching <paramref name="match"/> arrives within <paramref name="window"/>.</summary>
    public async Task<bool> NothingArrivesAsync(Func<Frame, bool> match, TimeSpan window)
    {
        try
        {
            await WaitForAsync(match, window);
            return false;
        }
        catch (TimeoutException)
        {
            return true;
        }
    }

    /// <summary>Sends a close frame (2 s at most), then aborts the socket and waits for the read loop to end.</summary>
    public async ValueTask DisposeAsync()
    {
        try
        {
            if (_socket.State == WebSocketState.Open)
            {
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "bye", cts.Token);
            }
        }
        catch (Exception)
        {
        }

        _socket.Abort();
        if (_reader is not null)
        {
            await _reader;
        }

        _socket.Dispose();
    }
}
