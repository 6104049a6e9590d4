using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Bridge.LoadTests.Cluster;

/// <summary>
/// A client that behaves as docs/protocol.md asks a real one to: it connects through the balancer, joins its rooms,
/// and whenever the connection ends (a dead worker, a 1012 restart, a network error) it reconnects to whichever
/// worker the balancer picks and joins again with <c>since</c> = the last <c>seq</c> it has of each room. It drops
/// a message it already has (same <c>seq</c>) and counts that. It publishes at a steady rate, one message at a time,
/// and retries a publish that got no <c>ack</c> with the same <c>id</c> until it does, so a message is counted as
/// published only once JetStream has stored it, and a retry is de-duplicated by the stream.
/// </summary>
internal sealed class ResilientClient : IAsyncDisposable
{
    private static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(8);
    private static readonly TimeSpan MaxReconnectDelay = TimeSpan.FromSeconds(1);

    private readonly int _index;
    private readonly Uri _url;
    private readonly string _token;
    private readonly string[] _rooms;
    private readonly string _publishRoom;
    private readonly TimeSpan _publishInterval;
    private readonly Dictionary<string, RoomState> _state;
    private readonly object _lock = new();
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _stopPublishing = new();
    private readonly List<long> _arrivals = [];
    private readonly List<(string Room, string Id, ulong Seq)> _acked = [];
    private readonly List<string> _servers = [];
    private readonly List<string> _closes = [];
    private readonly List<string> _errors = [];
    private Task _connectionLoop = Task.CompletedTask;
    private Task _publishLoop = Task.CompletedTask;
    private ClientWebSocket? _socket;
    private TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private HashSet<string> _joining = [];
    private string? _pendingId;
    private TaskCompletionSource<ulong?>? _pendingAck;
    private int _connection;

    public ResilientClient(int index, Uri url, string token, string[] rooms, int publishesPerSecond)
    {
        _index = index;
        _url = url;
        _token = token;
        _rooms = rooms;
        _publishRoom = rooms[index % rooms.Length];
        _publishInterval = TimeSpan.FromSeconds(1.0 / publishesPerSecond);
        _state = rooms.ToDictionary(r => r, _ => new RoomState(), StringComparer.Ordinal);
    }

    /// <summary>The worker of the current connection (from <c>welcome</c>), or null while disconnected.</summary>
    public string? Server { get; private set; }

    /// <summary>Connections made, the first included.</summary>
    public int Connections => Volatile.Read(ref _connection);

    /// <summary>Publishes sent again after a lost connection, an error or a missing ack.</summary>
    public int PublishRetries { get; private set; }

    /// <summary>Deliveries of a seq the client already had, dropped by its de-duplication.</summary>
    public long DuplicateDeliveries { get { lock (_lock) { return _state.Values.Sum(s => s.DuplicateDeliveries); } } }

    public IReadOnlyList<(string Room, string Id, ulong Seq)> Acked { get { lock (_lock) { return [.. _acked]; } } }

    public IReadOnlyList<string> Servers { get { lock (_lock) { return [.. _servers]; } } }

    public IReadOnlyList<string> Closes { get { lock (_lock) { return [.. _closes]; } } }

    public IReadOnlyList<string> Errors { get { lock (_lock) { return [.. _errors]; } } }

    /// <summary>Arrival times (Stopwatch timestamps) of every new message, in order.</summary>
    public IReadOnlyList<long> Arrivals { get { lock (_lock) { return [.. _arrivals]; } } }

    /// <summary>True while connected and every room is joined.</summary>
    public bool Ready { get { lock (_lock) { return _socket is not null && _ready.Task.IsCompletedSuccessfully; } } }

    /// <summary>The position of the first <c>room.joined</c> of <paramref name="room"/>: every later message is owed to this client.</summary>
    public ulong? StartOf(string room) { lock (_lock) { return _state[room].Start; } }

    /// <summary>The seqs of <paramref name="room"/> received, each once.</summary>
    public IReadOnlySet<ulong> Received(string room) { lock (_lock) { return new HashSet<ulong>(_state[room].Seen); } }

    /// <summary>Message ids of <paramref name="room"/> received with their seqs (one entry per seq).</summary>
    public IReadOnlyList<(ulong Seq, string? Id)> ReceivedWithIds(string room) { lock (_lock) { return [.. _state[room].Messages]; } }

    public void Start()
    {
        _connectionLoop = Task.Run(() => ConnectionLoopAsync(_stop.Token));
    }

    public async Task WaitReadyAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            Task ready;
            lock (_lock)
            {
                ready = _ready.Task;
            }

            await ready.WaitAsync(cancellationToken);
            if (Ready)
            {
                return;
            }

            await Task.Delay(20, cancellationToken);
        }
    }

    public void StartPublishing()
    {
        _publishLoop = Task.Run(() => PublishLoopAsync(_stopPublishing.Token, _stop.Token));
    }

    /// <summary>Stops publishing new messages; the one in flight is retried until it is acknowledged.</summary>
    public Task StopPublishingAsync()
    {
        _stopPublishing.Cancel();
        return _publishLoop;
    }

    private async Task ConnectionLoopAsync(CancellationToken cancellationToken)
    {
        var failures = 0;
        while (!cancellationToken.IsCancellationRequested)
        {
            var socket = new ClientWebSocket();
            socket.Options.AddSubProtocol("bridge.v1.json");
            socket.Options.SetRequestHeader("Authorization", "Bearer " + _token);
            try
            {
                using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                connectTimeout.CancelAfter(TimeSpan.FromSeconds(5));
                await socket.ConnectAsync(_url, connectTimeout.Token);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or HttpRequestException)
            {
                socket.Dispose();
                if (cancellationToken.IsCancellationRequested)
                {
                    return;
                }

                // 502/503 from nginx while no worker can take the connection; back off up to a second.
                failures++;
                await Delay(TimeSpan.FromMilliseconds(Math.Min(MaxReconnectDelay.TotalMilliseconds, 50 * (1 << Math.Min(failures, 5)))), cancellationToken);
                continue;
            }

            failures = 0;
            var connection = Interlocked.Increment(ref _connection);
            string joinFrame;
            lock (_lock)
            {
                _socket = socket;
                _joining = [.. _rooms];
                if (_ready.Task.IsCompleted)
                {
                    _ready = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }

                joinFrame = JoinFrame(connection, _rooms);
            }

            var reconnectAfter = TimeSpan.Zero;
            try
            {
                await SendAsync(socket, joinFrame, cancellationToken);
                reconnectAfter = await ReceiveLoopAsync(socket, connection, cancellationToken);
            }
            catch (Exception ex)
            {
                // A dropped connection (WebSocketException, IOException) or a frame this client cannot read: either
                // way it reconnects and resumes; the reason is kept for the report.
                lock (_lock)
                {
                    _closes.Add(cancellationToken.IsCancellationRequested ? "stopped" : $"dropped ({ex.GetType().Name})");
                    if (ex is not (WebSocketException or OperationCanceledException or IOException))
                    {
                        _errors.Add($"client: {ex.GetType().Name}: {ex.Message}");
                    }
                }
            }
            finally
            {
                lock (_lock)
                {
                    _socket = null;
                    Server = null;
                    // A publish in flight on this connection is retried on the next one.
                    _pendingAck?.TrySetResult(null);
                }

                socket.Abort();
                socket.Dispose();
            }

            await Delay(reconnectAfter, cancellationToken);
        }
    }

    private string JoinFrame(int connection, IEnumerable<string> rooms)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfo.InvariantCulture, $$"""{"type":"room.join","id":"j-{{connection}}","payload":{"rooms":[""");
        var first = true;
        foreach (var room in rooms)
        {
            var state = _state[room];
            sb.Append(first ? "" : ",");
            first = false;
            // Resume from the last seq this client has of the room (or its first room.joined position).
            sb.Append(state.Start is null
                ? $$"""{"room":"{{room}}"}"""
                : string.Create(CultureInfo.InvariantCulture, $$"""{"room":"{{room}}","since":{{state.Position}}}"""));
        }

        return sb.Append("]}}").ToString();
    }

    private async Task<TimeSpan> ReceiveLoopAsync(ClientWebSocket socket, int connection, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
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

                result = await socket.ReceiveAsync(buffer.AsMemory(count), cancellationToken);
                count += result.Count;
            }
            while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

            if (result.MessageType == WebSocketMessageType.Close)
            {
                var code = (int?)socket.CloseStatus;
                var reason = socket.CloseStatusDescription ?? "";
                lock (_lock)
                {
                    _closes.Add($"{code} {reason}".Trim());
                }

                // 1012 (service restart) may carry a spread delay: reconnect_after_ms=<n>.
                const string marker = "reconnect_after_ms=";
                var at = reason.IndexOf(marker, StringComparison.Ordinal);
                var digits = at < 0 ? "" : new string(reason[(at + marker.Length)..].TakeWhile(char.IsAsciiDigit).ToArray());
                return int.TryParse(digits, CultureInfo.InvariantCulture, out var ms) ? TimeSpan.FromMilliseconds(Math.Min(ms, 5000)) : TimeSpan.Zero;
            }

            OnFrame(socket, buffer.AsSpan(0, count), connection);
        }
    }

    private void OnFrame(ClientWebSocket socket, ReadOnlySpan<byte> frame, int connection)
    {
        using var doc = JsonDocument.Parse(frame.ToArray());
        var root = doc.RootElement;
        var type = root.GetProperty("type").GetString();
        var room = root.TryGetProperty("room", out var r) ? r.GetString() : null;
        var seq = root.TryGetProperty("seq", out var s) && s.ValueKind == JsonValueKind.Number ? s.GetUInt64() : 0;
        var id = root.TryGetProperty("id", out var i) ? i.GetString() : null;
        var payload = root.TryGetProperty("payload", out var p) ? p : default;
        lock (_lock)
        {
            switch (type)
            {
                case "welcome":
                    Server = payload.GetProperty("serverId").GetString();
                    _servers.Add(Server ?? "?");
                    break;
                case "room.joined" when room is not null && _state.TryGetValue(room, out var joined):
                    joined.Start ??= seq;
                    joined.Position = Math.Max(joined.Position, seq);
                    _joining.Remove(room);
                    if (_joining.Count == 0 && ReferenceEquals(_socket, socket))
                    {
                        _ready.TrySetResult();
                    }

                    break;
                case "ack" when id is not null && id == _pendingId:
                    _pendingAck?.TrySetResult(seq);
                    break;
                case "error":
                    var code = payload.TryGetProperty("code", out var c) ? c.GetString() : null;
                    var reference = payload.TryGetProperty("ref", out var f) ? f.GetString() : null;
                    _errors.Add($"{code} (ref {reference})");
                    if (reference is not null && reference == _pendingId)
                    {
                        _pendingAck?.TrySetResult(null); // publish_failed or rate_limited: retry with the same id
                    }
                    else if (reference == $"j-{connection}" && _joining.Count > 0)
                    {
                        // A join refused while NATS is unreachable (unavailable): join the rest again shortly.
                        var retry = JoinFrame(connection, [.. _joining]);
                        _ = Task.Run(async () =>
                        {
                            await Task.Delay(500);
                            await SendAsync(socket, retry, CancellationToken.None);
                        });
                    }

                    break;
                case not null when type.StartsWith("load.", StringComparison.Ordinal) && room is not null && _state.TryGetValue(room, out var state):
                    if (state.Seen.Add(seq))
                    {
                        state.Messages.Add((seq, id));
                        state.Position = Math.Max(state.Position, seq);
                        _arrivals.Add(Stopwatch.GetTimestamp());
                    }
                    else
                    {
                        state.DuplicateDeliveries++;
                    }

                    break;
            }
        }
    }

    private async Task PublishLoopAsync(CancellationToken stopPublishing, CancellationToken stop)
    {
        var sw = Stopwatch.StartNew();
        for (var n = 1; !stopPublishing.IsCancellationRequested; n++)
        {
            var wait = _publishInterval * n - sw.Elapsed;
            if (wait > TimeSpan.Zero && !await Delay(wait, stopPublishing))
            {
                return;
            }

            var id = string.Create(CultureInfo.InvariantCulture, $"c{_index}-{n}");
            var frame = string.Create(CultureInfo.InvariantCulture, $$$"""{"type":"load.tick","room":"{{{_publishRoom}}}","id":"{{{id}}}","payload":{"c":{{{_index}}},"n":{{{n}}}}}""");
            for (var attempt = 0; !stop.IsCancellationRequested; attempt++)
            {
                if (attempt > 0)
                {
                    PublishRetries++;
                    await Delay(TimeSpan.FromMilliseconds(100), stop);
                }

                await WaitReadyAsync(stop);
                var ack = new TaskCompletionSource<ulong?>(TaskCreationOptions.RunContinuationsAsynchronously);
                ClientWebSocket? socket;
                lock (_lock)
                {
                    _pendingId = id;
                    _pendingAck = ack;
                    socket = _socket;
                }

                if (socket is null || !await TrySendAsync(socket, frame, stop))
                {
                    continue;
                }

                ulong? seq;
                try
                {
                    seq = await ack.Task.WaitAsync(AckTimeout, stop);
                }
                catch (TimeoutException)
                {
                    continue;
                }

                if (seq is { } stored)
                {
                    lock (_lock)
                    {
                        _acked.Add((_publishRoom, id, stored));
                        _pendingId = null;
                        _pendingAck = null;
                    }

                    break;
                }
            }
        }
    }

    private async Task<bool> TrySendAsync(ClientWebSocket socket, string frame, CancellationToken cancellationToken)
    {
        try
        {
            await SendAsync(socket, frame, cancellationToken);
            return true;
        }
        catch (Exception ex) when (ex is WebSocketException or InvalidOperationException or ObjectDisposedException)
        {
            return false;
        }
    }

    private async Task SendAsync(ClientWebSocket socket, string frame, CancellationToken cancellationToken)
    {
        await _sendLock.WaitAsync(cancellationToken);
        try
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes(frame), WebSocketMessageType.Text, true, cancellationToken);
        }
        finally
        {
            _sendLock.Release();
        }
    }

    private static async Task<bool> Delay(TimeSpan delay, CancellationToken cancellationToken)
    {
        try
        {
            await Task.Delay(delay, cancellationToken);
            return true;
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopPublishing.Cancel();
        await _stop.CancelAsync();
        ClientWebSocket? socket;
        lock (_lock)
        {
            socket = _socket;
        }

        if (socket is { State: WebSocketState.Open })
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", timeout.Token);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }

        try
        {
            await Task.WhenAll(_connectionLoop, _publishLoop);
        }
        catch (OperationCanceledException)
        {
        }

        _stop.Dispose();
        _stopPublishing.Dispose();
        _sendLock.Dispose();
    }

    private sealed class RoomState
    {
        public ulong? Start { get; set; }

        public ulong Position { get; set; }

        public HashSet<ulong> Seen { get; } = [];

        public List<(ulong Seq, string? Id)> Messages { get; } = [];

        public long DuplicateDeliveries { get; set; }
    }
}
