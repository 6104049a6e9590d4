using Bridge.Testing;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Bridge.Contracts;
using MessagePack;

namespace Bridge.Tests.Infrastructure;

/// <summary>A frame as a client sees it, decoded with library code independent of the worker's codecs.</summary>
public sealed class Frame
{
    public required JsonObject Json { get; init; }

    /// <summary>For msgpack clients: the frame as MessagePack decoded it (bin stays byte[]).</summary>
    public IDictionary<object, object?>? MsgPack { get; init; }

    public string? Type => Json["type"]?.GetValue<string>();

    public string? Room => Json["room"]?.GetValue<string>();

    public string? Id => Json["id"]?.GetValue<string>();

    public ulong Seq => Json["seq"]?.GetValue<ulong>() ?? 0;

    public JsonNode? Payload => Json["payload"];

    public string? ErrorCode => Type == MessageTypes.Error ? Payload?["code"]?.GetValue<string>() : null;

    public override string ToString() => Json.ToJsonString();
}

/// <summary>A real ClientWebSocket speaking either subprotocol.</summary>
public sealed class TestClient : IAsyncDisposable
{
    private readonly ClientWebSocket _socket;
    private readonly Channel<Frame> _frames = Channel.CreateUnbounded<Frame>();
    private readonly TaskCompletionSource<WebSocketCloseStatus?> _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _reader;
    private Exception? _readError;

    private TestClient(ClientWebSocket socket, bool msgpack)
    {
        _socket = socket;
        IsMsgPack = msgpack;
    }

    /// <summary>A pause after each frame read: a client that reads, but slower than its rooms publish.</summary>
    public TimeSpan ReadDelay { get; set; }

    /// <summary>The reason of the server's close frame, once closed.</summary>
    public string? CloseReason => _socket.CloseStatusDescription;

    public bool IsMsgPack { get; }

    public WebSocket Socket => _socket;

    /// <summary>Completes with the close status the server sent (null when the connection dropped without one).</summary>
    public Task<WebSocketCloseStatus?> Closed => _closed.Task;

    /// <param name="receiveBufferBytes">When set, the TCP receive buffer of the client socket: a small one makes a
    /// client that stops reading back up the server quickly.</param>
    public static async Task<TestClient> ConnectAsync(
        Uri url, string? subprotocol = null, bool startReading = true, int? receiveBufferBytes = null,
        Action<ClientWebSocketOptions>? configure = null)
    {
        var socket = new ClientWebSocket();
        configure?.Invoke(socket.Options);
        if (subprotocol is not null)
        {
            socket.Options.AddSubProtocol(subprotocol);
        }

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        if (receiveBufferBytes is { } size)
        {
            using var handler = new SocketsHttpHandler
            {
                ConnectCallback = async (context, ct) =>
                {
                    var s = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp)
                    {
                        ReceiveBufferSize = size,
                        NoDelay = true,
                    };
                    await s.ConnectAsync(context.DnsEndPoint, ct);
                    return new System.Net.Sockets.NetworkStream(s, ownsSocket: true);
                },
            };
            await socket.ConnectAsync(url, new HttpMessageInvoker(handler, disposeHandler: false), cts.Token);
        }
        else
        {
            await socket.ConnectAsync(url, cts.Token);
        }
        var client = new TestClient(socket, subprotocol == Subprotocols.MessagePack);
        if (startReading)
        {
            client.StartReading();
        }

        return client;
    }

    public void StartReading() => _reader ??= Task.Run(ReadLoopAsync);

    private async Task ReadLoopAsync()
    {
        var buffer = new byte[1 << 20];
        try
        {
            while (true)
            {
                var count = 0;
                ValueWebSocketReceiveResult result;
                do
                {
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

                _frames.Writer.TryWrite(Decode(buffer.AsSpan(0, count).ToArray()));
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
        }
    }

    private Frame Decode(byte[] data)
    {
        if (!IsMsgPack)
        {
            return new Frame { Json = JsonNode.Parse(data)!.AsObject() };
        }

        // ConvertToJson writes control characters in strings as they are; JSON needs them escaped.
        var json = string.Concat(MessagePackSerializer.ConvertToJson(data).Select(c => c < ' ' ? $"\\u{(int)c:x4}" : c.ToString()));
        var map = MessagePackSerializer.Deserialize<Dictionary<object, object?>>(data);
        return new Frame { Json = JsonNode.Parse(json)!.AsObject(), MsgPack = map };
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

    public async Task SendRawAsync(byte[] bytes, WebSocketMessageType? type = null)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await _socket.SendAsync(bytes, type ?? (IsMsgPack ? WebSocketMessageType.Binary : WebSocketMessageType.Text), true, cts.Token);
    }

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
        _socket.Dispose();
    }
}
