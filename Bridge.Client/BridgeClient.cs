using System.Buffers;
using System.Buffers.Text;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text.Json;
using System.Threading.Channels;
using Bridge.Client.Protocol;
using Bridge.Contracts;
using MessagePack;

namespace Bridge.Client;

/// <summary>
/// A Bridge connection that survives drops (docs/protocol.md): it reconnects with exponential backoff and full
/// jitter (after close 1012 at the server's <c>reconnect_after_ms</c>, to the next worker), asks for a new token
/// after 4001/4003/HTTP 401, resumes every joined room from its last <c>seq</c> and drops duplicates, and sends
/// unacknowledged publishes again in order with their original ids, so the server stores each once.
/// </summary>
/// <remarks>Thread-safe. Events run on the client's loops: keep handlers short; exceptions they throw are ignored.</remarks>
public sealed class BridgeClient : IAsyncDisposable
{
    // The largest frame accepted from the server: a 1 MiB stored message grows by 4/3 in base64, plus its envelope.
    private const int MaxReceiveBytes = 16 * 1024 * 1024;

    // Joins refused with `unavailable` are retried this often before the join fails.
    private const int MaxJoinAttempts = 5;

    // Time for the close handshake when the client is disposed or answers the server's close.
    private static readonly TimeSpan CloseTimeout = TimeSpan.FromSeconds(2);

    private readonly BridgeClientOptions _options;
    private readonly TimeProvider _time;
    private readonly IReadOnlyList<Uri> _uris;
    private readonly Dictionary<string, RoomSubscription> _rooms = new(StringComparer.Ordinal);
    private readonly LinkedList<PendingPublish> _outbox = new();
    private readonly Dictionary<string, LinkedListNode<PendingPublish>> _outboxById = new(StringComparer.Ordinal);
    private readonly CancellationTokenSource _disposeCts = new();
    private readonly TaskCompletionSource _firstOpen = new(TaskCreationOptions.RunContinuationsAsynchronously);

    // Guarded by Gate.
    private Connection? _connection;
    private TaskCompletionSource<Connection> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ConnectionState _state = ConnectionState.Idle;
    private BridgeException? _closedError;
    private Task? _loop;

    private string? _token;
    private int _epoch;
    private int _uriIndex;
    private long _requestCounter;
    private volatile bool _disposed;

    public BridgeClient(BridgeClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = options.TimeProvider;
        _uris = options.Uris is { Count: > 0 } list ? [.. list.Select(ToWebSocketUri)]
            : options.Uri is { } uri ? [ToWebSocketUri(uri)]
            : [];
    }

    /// <summary>Raised on every state change, with why the last connection ended and the delay before the next attempt.</summary>
    public event EventHandler<ConnectionStateChangedEventArgs>? StateChanged;

    public ConnectionState State
    {
        get
        {
            lock (Gate)
            {
                return _state;
            }
        }
    }

    /// <summary>The worker of the current (or last) connection, from its <c>welcome</c>.</summary>
    public string? ServerId { get; private set; }

    /// <summary>The current (or last) connection's id, from its <c>welcome</c>.</summary>
    public string? ConnectionId { get; private set; }

    /// <summary>The user the server sees (the token's <c>sub</c>, or <c>anonymous</c>).</summary>
    public string? User { get; private set; }

    /// <summary>Publishes waiting for their ack (queued while disconnected, in flight, or waiting for a retry).</summary>
    public int PendingPublishes
    {
        get
        {
            lock (Gate)
            {
                return _outbox.Count;
            }
        }
    }

    internal Lock Gate { get; } = new();

    /// <summary>
    /// Starts the connection loop (once) and completes when the first connection is open. It keeps reconnecting
    /// after that until the client is disposed. Throws <see cref="BridgeException"/> when the client closes for good
    /// first (a refused token and no new one).
    /// </summary>
    public Task ConnectAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        lock (Gate)
        {
            _loop ??= Task.Run(() => RunAsync(_disposeCts.Token), CancellationToken.None);
        }

        return _firstOpen.Task.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Joins <paramref name="room"/> (now, or once connected) and keeps it joined across reconnects. Completes on
    /// the first <c>room.joined</c>. <paramref name="since"/> resumes from a position the caller kept (a <c>seq</c>):
    /// every later message is replayed first. Joining a room already joined returns its subscription.
    /// </summary>
    public async Task<RoomSubscription> JoinAsync(string room, ulong? since = null, CancellationToken cancellationToken = default)
    {
        if (!RoomName.IsValid(room))
        {
            throw new ArgumentException($"'{room}' is not a valid room name (docs/protocol.md §2)", nameof(room));
        }

        RoomSubscription subscription;
        lock (Gate)
        {
            ThrowIfClosedLocked();
            if (!_rooms.TryGetValue(room, out subscription!))
            {
                subscription = new RoomSubscription(this, room, since, _options.RoomBufferCapacity);
                _rooms.Add(room, subscription);
                if (_connection is { Welcomed: true } connection)
                {
                    SendJoinLocked(connection, subscription);
                }
            }
        }

        try
        {
            await subscription.FirstJoin.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await LeaveAsync(room, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        return subscription;
    }

    /// <summary>Leaves a room: its enumerable ends, no more of its messages are delivered, and it is not resumed.</summary>
    public async Task LeaveAsync(string room, CancellationToken cancellationToken = default)
    {
        PendingRequest? request = null;
        lock (Gate)
        {
            if (!_rooms.Remove(room, out var subscription))
            {
                return;
            }

            subscription.Messages.Writer.TryComplete();
            subscription.FirstJoin.TrySetException(new BridgeException("left", $"left room '{room}' before it was joined"));
            if (_connection is { Welcomed: true } connection && subscription.JoinEpoch == connection.Epoch)
            {
                request = AddRequestLocked(connection, RequestKind.Leave, room);
                connection.Enqueue(new OutboundFrame(MessageTypes.RoomLeave, room, request.Id));
            }
        }

        if (request is null)
        {
            return;
        }

        try
        {
            await request.Completion.Task.WaitAsync(_options.AckTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is BridgeException or TimeoutException)
        {
            // Left on our side already; the connection going away leaves the room on the server too.
        }
    }

    /// <summary>
    /// Publishes <paramref name="payload"/> (serialized as JSON) to <paramref name="room"/> as <paramref name="type"/>
    /// and completes with the <see cref="Ack"/> once the server stored it. The id (generated unless given) is reused
    /// for every retry, so a publish is stored once (§9). While disconnected, publishes wait in a bounded queue
    /// (<see cref="BridgeClientOptions.MaxQueuedPublishes"/>) and are sent in order on reconnect. Cancelling stops the
    /// wait, and drops the publish if it was never sent.
    /// </summary>
    public Task<Ack> PublishAsync<T>(string room, string type, T payload, string? id = null, CancellationToken cancellationToken = default) =>
        PublishCoreAsync(room, type, JsonSerializer.SerializeToUtf8Bytes(payload, _options.JsonSerializerOptions), null, id, cancellationToken);

    /// <summary>Publishes a binary payload (<c>enc: base64</c> in JSON, <c>bin</c> in MessagePack); otherwise as <see cref="PublishAsync{T}"/>.</summary>
    public Task<Ack> PublishBinaryAsync(string room, string type, ReadOnlyMemory<byte> payload, string? id = null, CancellationToken cancellationToken = default) =>
        PublishCoreAsync(room, type, null, payload, id, cancellationToken);

    /// <summary>
    /// <c>room.sync</c>: the room's last <paramref name="limit"/> (1-100) stored messages and its position (join
    /// with <c>since</c> = <see cref="RoomState.Seq"/> to continue from it). Waits for a connection.
    /// </summary>
    public async Task<RoomState> SyncAsync(string room, int limit = 1, CancellationToken cancellationToken = default)
    {
        if (!RoomName.IsValid(room))
        {
            throw new ArgumentException($"'{room}' is not a valid room name", nameof(room));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, 100);
        var payload = System.Text.Encoding.UTF8.GetBytes($"{{\"limit\":{limit}}}");
        var state = await RequestAsync(RequestKind.Sync, MessageTypes.RoomSync, room, payload, cancellationToken).ConfigureAwait(false);
        var messages = state.Messages?.Where(m => m.Type is not null && m.Room is not null).Select(m => m.ToMessage()).ToList() ?? [];
        return new RoomState(room, state.Seq ?? 0, messages);
    }

    /// <summary><c>presence.query</c>: who is in a presence room, over all workers. Waits for a connection.</summary>
    public async Task<IReadOnlyList<PresenceMember>> QueryPresenceAsync(string room, CancellationToken cancellationToken = default)
    {
        if (!RoomName.IsValid(room))
        {
            throw new ArgumentException($"'{room}' is not a valid room name", nameof(room));
        }

        var state = await RequestAsync(RequestKind.Presence, MessageTypes.PresenceQuery, room, null, cancellationToken).ConfigureAwait(false);
        var members = new List<PresenceMember>();
        if (state.Payload is { ValueKind: JsonValueKind.Object } payload &&
            payload.TryGetProperty("members", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var m in list.EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.Object && m.TryGetProperty("user", out var user) && user.ValueKind == JsonValueKind.String)
                {
                    var connections = m.TryGetProperty("connections", out var c) && c.TryGetInt32(out var n) ? n : 0;
                    var since = m.TryGetProperty("since", out var s) && s.TryGetInt64(out var ms) ? DateTimeOffset.FromUnixTimeMilliseconds(ms) : default;
                    members.Add(new PresenceMember(user.GetString()!, connections, since));
                }
            }
        }

        return members;
    }

    /// <summary>Closes the connection (1000), ends every room's enumerable, and fails pending publishes with <c>closed</c>.</summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        Connection? connection;
        Task? loop;
        lock (Gate)
        {
            connection = _connection;
            loop = _loop;
        }

        if (connection is not null)
        {
            try
            {
                using var timeout = new CancellationTokenSource(CloseTimeout);
                await connection.Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "client closed", timeout.Token).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
            {
            }
        }

        await _disposeCts.CancelAsync().ConfigureAwait(false);
        if (loop is not null)
        {
            await loop.ConfigureAwait(false);
        }

        CloseForGood(new BridgeException("closed", "the client was disposed"), null);
        _disposeCts.Dispose();
    }

    // ---- the connection loop ---------------------------------------------------------------------------------

    private async Task RunAsync(CancellationToken ct)
    {
        SetState(ConnectionState.Connecting);
        var attempt = 0;
        var tokenFetched = false;
        while (!ct.IsCancellationRequested)
        {
            EndInfo end;
            try
            {
                if (!tokenFetched && _options.TokenProvider is { } provider)
                {
                    _token = await provider(ct).ConfigureAwait(false);
                }

                tokenFetched = true;
                end = await RunConnectionAsync(await NextUriAsync(ct).ConfigureAwait(false), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // A failing token or URL provider is retried like a failed connection.
                end = new EndInfo { Reason = ex.Message };
            }

            if (ct.IsCancellationRequested || _disposed)
            {
                return;
            }

            if (end.WasReady)
            {
                attempt = 0;
            }

            TimeSpan delay;
            if (end.CloseCode == CloseCodes.ServiceRestart)
            {
                // The worker is going away on purpose: come back at once (to the next worker), after the server's spread delay.
                attempt = 0;
                delay = Backoff.ReconnectAfter(end.Reason) ?? NextBackoff(0);
            }
            else if (end.CloseCode is CloseCodes.TokenExpired or CloseCodes.Forbidden || end.HttpStatus is 401 or 403)
            {
                string? fresh = null;
                try
                {
                    fresh = _options.TokenProvider is { } provider ? await provider(ct).ConfigureAwait(false) : null;
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }
                catch (Exception)
                {
                    // No new token: handled below like a provider that returned nothing.
                }

                if (fresh is null || fresh == _token)
                {
                    CloseForGood(new BridgeException(ErrorCodes.Unauthorized, $"the server refused the token ({end.CloseCode ?? end.HttpStatus} {end.Reason}) and the token provider gave no new one"), end);
                    return;
                }

                _token = fresh;
                attempt = 0;
                delay = TimeSpan.Zero;
            }
            else
            {
                delay = NextBackoff(attempt);
            }

            SetState(ConnectionState.Reconnecting, end, attempt, delay);
            attempt++;
            try
            {
                await Task.Delay(delay, _time, ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                return;
            }
        }
    }

    private TimeSpan NextBackoff(int attempt) =>
        Backoff.Delay(attempt, _options.ReconnectMinDelay, _options.ReconnectMaxDelay, _options.Random());

    private async ValueTask<Uri> NextUriAsync(CancellationToken ct)
    {
        if (_options.UriProvider is { } provider)
        {
            return ToWebSocketUri(await provider(ct).ConfigureAwait(false));
        }

        var uri = _uris[_uriIndex % _uris.Count];
        _uriIndex = (_uriIndex + 1) % _uris.Count;
        return uri;
    }

    private async Task<EndInfo> RunConnectionAsync(Uri uri, CancellationToken ct)
    {
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol(_options.Format == BridgeFormat.Json ? Subprotocols.Json : Subprotocols.MessagePack);
        socket.Options.CollectHttpResponseDetails = true;
        if (_options.KeepAliveInterval > TimeSpan.Zero)
        {
            // Pings with a pong deadline notice a dead connection that said nothing (a pulled cable, a frozen peer).
            socket.Options.KeepAliveInterval = _options.KeepAliveInterval;
            socket.Options.KeepAliveTimeout = _options.KeepAliveInterval;
        }

        try
        {
            using var openTimeout = new CancellationTokenSource(_options.OpenTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, openTimeout.Token);
            await socket.ConnectAsync(WithToken(uri, _token), linked.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && ex is WebSocketException or OperationCanceledException or HttpRequestException)
        {
            var status = (int)socket.HttpStatusCode;
            socket.Dispose();
            return new EndInfo { HttpStatus = status == 0 ? null : status, Reason = ex.Message };
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var format = socket.SubProtocol == Subprotocols.MessagePack ? BridgeFormat.MessagePack : BridgeFormat.Json;
        using var connection = new Connection(Interlocked.Increment(ref _epoch), socket, uri, format, ct);
        lock (Gate)
        {
            _connection = connection;
        }

        var sender = SendLoopAsync(connection);
        var receiver = ReceiveLoopAsync(connection);
        var watchdog = Task.CompletedTask;
        var refresher = Task.CompletedTask;
        try
        {
            await connection.Welcome.Task.WaitAsync(_options.OpenTimeout, _time, connection.Token).ConfigureAwait(false);
            var liveJoins = OnWelcome(connection);
            watchdog = WatchdogAsync(connection);
            refresher = RefreshLoopAsync(connection);
            // Rooms joining live (no position yet) are joined before publishes go out, so the sender receives its own
            // messages; rooms with a position resume, so their order does not matter.
            if (liveJoins.Length > 0)
            {
                await Task.WhenAll(liveJoins).WaitAsync(_options.OpenTimeout, _time, connection.Token).ConfigureAwait(false);
            }

            OnReady(connection);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            connection.Abort(ex is TimeoutException ? "no welcome or room.joined in time" : "closed");
        }

        var end = await receiver.ConfigureAwait(false);
        connection.Abort("closed");
        await Task.WhenAll(sender, watchdog, refresher).ConfigureAwait(false);
        lock (Gate)
        {
            end.WasReady = connection.Ready;
        }

        Teardown(connection);
        return end;
    }

    private Task[] OnWelcome(Connection connection)
    {
        List<Task> liveJoins = [];
        lock (Gate)
        {
            connection.Welcomed = true;
            foreach (var subscription in _rooms.Values)
            {
                SendJoinLocked(connection, subscription);
                if (subscription.PositionValue is null)
                {
                    var joined = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    connection.LiveJoins[subscription.Room] = joined;
                    liveJoins.Add(joined.Task);
                }
            }
        }

        SetState(ConnectionState.Open, uri: connection.Uri);
        _firstOpen.TrySetResult();
        return [.. liveJoins];
    }

    private void OnReady(Connection connection)
    {
        lock (Gate)
        {
            if (connection.Token.IsCancellationRequested)
            {
                return;
            }

            connection.Ready = true;
            FlushLocked(connection);
            _ready.TrySetResult(connection);
        }
    }

    /// <summary>Forgets a connection: unacknowledged publishes are sent again on the next one, requests fail.</summary>
    private void Teardown(Connection connection)
    {
        List<PendingRequest> requests;
        List<TaskCompletionSource> liveJoins;
        lock (Gate)
        {
            if (_connection == connection)
            {
                _connection = null;
            }

            if (_ready.Task.IsCompleted && _closedError is null)
            {
                _ready = new TaskCompletionSource<Connection>(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            foreach (var pending in _outbox)
            {
                pending.SentEpoch = -1;
            }

            foreach (var subscription in _rooms.Values)
            {
                subscription.JoinId = null;
                subscription.RetryJoinAt = null;
            }

            requests = [.. connection.Requests.Values];
            connection.Requests.Clear();
            liveJoins = [.. connection.LiveJoins.Values];
            connection.LiveJoins.Clear();
        }

        foreach (var request in requests)
        {
            request.Completion.TrySetException(new BridgeException("disconnected", "the connection ended before the answer came", request.Id));
        }

        foreach (var joined in liveJoins)
        {
            joined.TrySetResult();
        }
    }

    private void CloseForGood(BridgeException error, EndInfo? end)
    {
        List<PendingPublish> publishes;
        List<RoomSubscription> rooms;
        lock (Gate)
        {
            if (_state == ConnectionState.Closed)
            {
                return;
            }

            _closedError ??= error;
            publishes = [.. _outbox];
            _outbox.Clear();
            _outboxById.Clear();
            rooms = [.. _rooms.Values];
            _rooms.Clear();
            _ready.TrySetException(error);
        }

        foreach (var pending in publishes)
        {
            pending.Completion.TrySetException(new BridgeException(error.Code, error.Message, pending.Id));
        }

        foreach (var subscription in rooms)
        {
            subscription.FirstJoin.TrySetException(error);
            // Disposing ends the enumerables normally; a refused token ends them with the error.
            subscription.Messages.Writer.TryComplete(_disposed ? null : error);
        }

        _firstOpen.TrySetException(error);
        _ = _firstOpen.Task.Exception; // observed: nobody may be waiting for it
        _ = _ready.Task.Exception;
        SetState(ConnectionState.Closed, end);
    }

    // ---- the connection's loops --------------------------------------------------------------------------

    private static async Task SendLoopAsync(Connection connection)
    {
        try
        {
            await foreach (var frame in connection.Outbound.Reader.ReadAllAsync(connection.Token).ConfigureAwait(false))
            {
                await connection.Socket.SendAsync(frame, connection.MessageType, endOfMessage: true, connection.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException or InvalidOperationException)
        {
            connection.Abort($"send failed: {ex.Message}");
        }
    }

    private async Task<EndInfo> ReceiveLoopAsync(Connection connection)
    {
        var socket = connection.Socket;
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
                        await CloseQuietlyAsync(socket, WebSocketCloseStatus.MessageTooBig).ConfigureAwait(false);
                        return new EndInfo { Reason = $"a frame from the server is larger than {MaxReceiveBytes} bytes" };
                    }

                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, count).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }

                var result = await socket.ReceiveAsync(buffer.AsMemory(count), connection.Token).ConfigureAwait(false);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await CloseQuietlyAsync(socket, WebSocketCloseStatus.NormalClosure).ConfigureAwait(false);
                    return new EndInfo { CloseCode = (int?)socket.CloseStatus, Reason = socket.CloseStatusDescription };
                }

                count += result.Count;
                if (!result.EndOfMessage)
                {
                    continue;
                }

                Envelope? envelope = null;
                try
                {
                    envelope = FrameCodec.Decode(buffer.AsMemory(0, count), connection.Format);
                }
                catch (Exception ex) when (ex is FormatException or JsonException or MessagePackSerializationException
                                               or EndOfStreamException or InvalidOperationException or OverflowException)
                {
                    // A frame this client cannot read (a newer server?): skip it rather than drop the connection.
                }

                count = 0;
                if (envelope?.Type is not null)
                {
                    await DispatchAsync(connection, envelope).ConfigureAwait(false);
                }
            }
        }
        catch (OperationCanceledException)
        {
            return new EndInfo { Reason = connection.AbortReason ?? "closed" };
        }
        catch (Exception ex) when (ex is WebSocketException or ObjectDisposedException or InvalidOperationException)
        {
            return new EndInfo { Reason = ex.Message };
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
            connection.Welcome.TrySetCanceled();
            connection.Abort("closed");
        }
    }

    private static async Task CloseQuietlyAsync(ClientWebSocket socket, WebSocketCloseStatus status)
    {
        try
        {
            using var timeout = new CancellationTokenSource(CloseTimeout);
            await socket.CloseOutputAsync(status, null, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
        }
    }

    /// <summary>Ack and request timeouts, and the retries of refused publishes and joins.</summary>
    private async Task WatchdogAsync(Connection connection)
    {
        var period = TimeSpan.FromMilliseconds(Math.Clamp(_options.AckTimeout.TotalMilliseconds / 4, 10, 250));
        using var timer = new PeriodicTimer(period, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(connection.Token).ConfigureAwait(false))
            {
                string? dead = null;
                var now = _time.GetTimestamp();
                lock (Gate)
                {
                    foreach (var pending in _outbox)
                    {
                        if (pending.RetryAt is { } at && now >= at)
                        {
                            pending.RetryAt = null;
                        }
                        else if (pending.SentEpoch == connection.Epoch && _time.GetElapsedTime(pending.SentAt, now) > _options.AckTimeout)
                        {
                            // No ack in time: the connection is probably dead without having said so. Start over; the
                            // resend carries the same id, so a message that was in fact stored is not stored again.
                            dead = "ack timeout";
                        }
                    }

                    foreach (var request in connection.Requests.Values)
                    {
                        if (_time.GetElapsedTime(request.SentAt, now) > _options.AckTimeout)
                        {
                            dead = $"no answer to {request.Kind} in time";
                        }
                    }

                    foreach (var subscription in _rooms.Values)
                    {
                        if (subscription.RetryJoinAt is { } at && now >= at)
                        {
                            SendJoinLocked(connection, subscription);
                        }
                    }

                    FlushLocked(connection);
                }

                if (dead is not null)
                {
                    connection.Abort(dead);
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>Renews the token before its <c>exp</c> and tells the server with <c>auth.refresh</c> (§1.1).</summary>
    private async Task RefreshLoopAsync(Connection connection)
    {
        if (_options.TokenProvider is not { } provider || _options.RefreshBeforeExpiry <= TimeSpan.Zero)
        {
            return;
        }

        try
        {
            while (Backoff.JwtExpiry(_token) is { } expiry)
            {
                var wait = expiry - _options.RefreshBeforeExpiry - _time.GetUtcNow();
                if (wait > TimeSpan.Zero)
                {
                    // Task.Delay holds at most ~49 days; a later expiry is reached in steps.
                    await Task.Delay(wait < TimeSpan.FromDays(1) ? wait : TimeSpan.FromDays(1), _time, connection.Token).ConfigureAwait(false);
                    continue;
                }

                var fresh = await provider(connection.Token).ConfigureAwait(false);
                if (fresh is null || fresh == _token)
                {
                    return; // nothing new: the server closes with 4001 and the provider is asked again then
                }

                PendingRequest request;
                lock (Gate)
                {
                    request = AddRequestLocked(connection, RequestKind.Refresh, null);
                    var payload = new ArrayBufferWriter<byte>();
                    using (var writer = new Utf8JsonWriter(payload))
                    {
                        writer.WriteStartObject();
                        writer.WriteString("token", fresh);
                        writer.WriteEndObject();
                    }

                    connection.Enqueue(new OutboundFrame(MessageTypes.AuthRefresh, null, request.Id, payload.WrittenSpan.ToArray()));
                }

                await request.Completion.Task.WaitAsync(connection.Token).ConfigureAwait(false);
                _token = fresh;
            }
        }
        catch (Exception)
        {
            // Cancelled with the connection, a refused token (`unauthorized`), or a failing provider: the connection
            // keeps its token until the server closes it with 4001, which asks the provider again.
        }
    }

    // ---- frames from the server ----------------------------------------------------------------------------

    private ValueTask DispatchAsync(Connection connection, Envelope envelope)
    {
        switch (envelope.Type)
        {
            case MessageTypes.Welcome:
                ServerId = envelope.PayloadString("serverId");
                ConnectionId = envelope.PayloadString("connectionId");
                User = envelope.PayloadString("user");
                connection.Welcome.TrySetResult();
                return ValueTask.CompletedTask;
            case MessageTypes.RoomJoined:
                OnJoined(connection, envelope);
                return ValueTask.CompletedTask;
            case MessageTypes.RoomLeft:
                OnLeft(connection, envelope);
                return ValueTask.CompletedTask;
            case MessageTypes.RoomState:
                CompleteRequest(connection, envelope, r => r.Kind == RequestKind.Sync && r.Room == envelope.Room);
                return ValueTask.CompletedTask;
            case MessageTypes.PresenceState:
            case MessageTypes.AuthRefreshed:
                CompleteRequest(connection, envelope, r => r.Id == envelope.Id);
                return ValueTask.CompletedTask;
            case MessageTypes.Ack:
                OnAck(envelope);
                return ValueTask.CompletedTask;
            case MessageTypes.Error:
                OnError(connection, envelope);
                return ValueTask.CompletedTask;
        }

        return envelope.Room is not null && envelope.Seq is not null
            ? DeliverAsync(connection, envelope)
            : ValueTask.CompletedTask; // server.* and whatever a newer server adds
    }

    private async ValueTask DeliverAsync(Connection connection, Envelope envelope)
    {
        RoomSubscription? subscription;
        var seq = envelope.Seq!.Value;
        lock (Gate)
        {
            if (!_rooms.TryGetValue(envelope.Room!, out subscription) || subscription.PositionValue >= seq)
            {
                return; // not (or no longer) in the room, or a duplicate already delivered
            }
        }

        try
        {
            // Waits while the room's buffer is full (see RoomBufferCapacity). The position moves only once the message
            // is in the buffer, so a connection lost meanwhile resumes from before it.
            await subscription.Messages.Writer.WriteAsync(envelope.ToMessage(), connection.Token).ConfigureAwait(false);
        }
        catch (ChannelClosedException)
        {
            return; // left meanwhile
        }

        lock (Gate)
        {
            if (!(subscription.PositionValue >= seq))
            {
                subscription.PositionValue = seq;
            }
        }
    }

    private void OnJoined(Connection connection, Envelope envelope)
    {
        if (envelope.Room is null || envelope.Seq is not { } seq)
        {
            return;
        }

        RoomSubscription? subscription;
        TaskCompletionSource? live;
        lock (Gate)
        {
            if (!_rooms.TryGetValue(envelope.Room, out subscription))
            {
                return;
            }

            if (!(subscription.PositionValue >= seq))
            {
                subscription.PositionValue = seq;
            }

            subscription.JoinId = null;
            subscription.JoinFailures = 0;
            connection.LiveJoins.Remove(envelope.Room, out live);
        }

        var info = new RoomJoinInfo(envelope.Room, seq, (int)(envelope.PayloadInt64("replayed") ?? 0), envelope.PayloadBool("truncated"));
        subscription.LastJoin = info; // before JoinAsync returns
        subscription.FirstJoin.TrySetResult();
        live?.TrySetResult();
        try
        {
            subscription.RaiseJoined(info);
        }
        catch (Exception)
        {
            // An application handler's bug must not break the connection.
        }
    }

    private void OnLeft(Connection connection, Envelope envelope)
    {
        if (envelope.Room is null)
        {
            return;
        }

        PendingRequest? leave = null;
        RoomSubscription? removed = null;
        lock (Gate)
        {
            leave = connection.Requests.Values.FirstOrDefault(r => r.Kind == RequestKind.Leave && r.Room == envelope.Room);
            if (leave is not null)
            {
                connection.Requests.Remove(leave.Id);
            }
            else if (_rooms.Remove(envelope.Room, out removed))
            {
                // The server left the room for us: a refreshed token no longer grants it (§1.1).
            }
        }

        leave?.Completion.TrySetResult(envelope);
        if (removed is not null)
        {
            var reason = envelope.PayloadString("reason") ?? "left";
            var error = new BridgeException(reason, $"the server left room '{envelope.Room}' ({reason})");
            removed.FirstJoin.TrySetException(error);
            removed.Messages.Writer.TryComplete(error);
        }
    }

    private void OnAck(Envelope envelope)
    {
        PendingPublish pending;
        lock (Gate)
        {
            if (envelope.Id is null || !_outboxById.Remove(envelope.Id, out var node))
            {
                return;
            }

            _outbox.Remove(node);
            pending = node.Value;
        }

        pending.Completion.TrySetResult(new Ack(pending.Room, pending.Id, envelope.Seq ?? 0, envelope.PayloadBool("duplicate")));
    }

    private void CompleteRequest(Connection connection, Envelope envelope, Func<PendingRequest, bool> match)
    {
        PendingRequest? request;
        lock (Gate)
        {
            request = connection.Requests.Values.FirstOrDefault(match);
            if (request is not null)
            {
                connection.Requests.Remove(request.Id);
            }
        }

        request?.Completion.TrySetResult(envelope);
    }

    private void OnError(Connection connection, Envelope envelope)
    {
        var reference = envelope.PayloadString("ref");
        if (reference is null)
        {
            return;
        }

        var error = new BridgeException(envelope.PayloadString("code") ?? "error", envelope.PayloadString("message") ?? "", reference);
        PendingPublish? failedPublish = null;
        RoomSubscription? failedRoom = null;
        PendingRequest? failedRequest = null;
        TaskCompletionSource? live = null;
        lock (Gate)
        {
            if (_outboxById.TryGetValue(reference, out var node))
            {
                var pending = node.Value;
                pending.SentEpoch = -1;
                if (error.Code is ErrorCodes.PublishFailed or ErrorCodes.RateLimited && ++pending.Failures < _options.MaxPublishAttempts)
                {
                    // May or may not be stored: retry later with the same id (the server answers the original seq if it was).
                    pending.RetryAt = _time.GetTimestamp() + ToTimestampTicks(NextBackoff(pending.Failures));
                }
                else
                {
                    _outboxById.Remove(reference);
                    _outbox.Remove(node);
                    failedPublish = pending;
                }
            }
            else if (_rooms.Values.FirstOrDefault(r => r.JoinId == reference) is { } subscription)
            {
                subscription.JoinId = null;
                if (error.Code is ErrorCodes.Unavailable or ErrorCodes.RateLimited && ++subscription.JoinFailures < MaxJoinAttempts)
                {
                    subscription.RetryJoinAt = _time.GetTimestamp() + ToTimestampTicks(NextBackoff(subscription.JoinFailures));
                }
                else
                {
                    _rooms.Remove(subscription.Room);
                    connection.LiveJoins.Remove(subscription.Room, out live);
                    failedRoom = subscription;
                }
            }
            else if (connection.Requests.Remove(reference, out var request))
            {
                failedRequest = request;
            }
        }

        failedPublish?.Completion.TrySetException(error);
        failedRequest?.Completion.TrySetException(error);
        live?.TrySetResult();
        if (failedRoom is not null)
        {
            failedRoom.FirstJoin.TrySetException(error);
            failedRoom.Messages.Writer.TryComplete(error);
        }
    }

    // ---- frames to the server ------------------------------------------------------------------------------

    private async Task<Ack> PublishCoreAsync(string room, string type, byte[]? json, ReadOnlyMemory<byte>? binary, string? id, CancellationToken ct)
    {
        if (!RoomName.IsValid(room))
        {
            throw new ArgumentException($"'{room}' is not a valid room name", nameof(room));
        }

        if (!MessageTypes.IsValid(type) || MessageTypes.IsReserved(type))
        {
            throw new ArgumentException($"'{type}' cannot be published (malformed or reserved, docs/protocol.md §2)", nameof(type));
        }

        id ??= NewPublishId();
        if (!MessageId.IsValid(id))
        {
            throw new ArgumentException("an id is 1-64 printable ASCII characters without spaces", nameof(id));
        }

        var frame = FrameCodec.Encode(new OutboundFrame(type, room, id, json, binary), _options.Format);
        if (frame.Length > _options.MaxFrameBytes)
        {
            throw new BridgeException("frame_too_big", $"the frame is {frame.Length} bytes, over MaxFrameBytes ({_options.MaxFrameBytes})", id);
        }

        var pending = new PendingPublish(room, id, frame);
        lock (Gate)
        {
            ThrowIfClosedLocked();
            if (_outboxById.ContainsKey(id))
            {
                throw new BridgeException("duplicate_id", $"a publish with id '{id}' is already waiting for its ack", id);
            }

            if (_outbox.Count >= _options.MaxQueuedPublishes)
            {
                throw new BridgeException("queue_full", $"{_options.MaxQueuedPublishes} publishes are already waiting for their ack", id);
            }

            _outboxById[id] = _outbox.AddLast(pending);
            if (_connection is { Ready: true } connection)
            {
                FlushLocked(connection);
            }
        }

        try
        {
            return await pending.Completion.Task.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            lock (Gate)
            {
                if (!pending.EverSent && _outboxById.Remove(id, out var node))
                {
                    _outbox.Remove(node);
                }
            }

            throw;
        }
    }

    /// <summary>Sends every publish not yet sent on this connection, oldest first (one FIFO, under the lock: in order).</summary>
    private void FlushLocked(Connection connection)
    {
        if (!connection.Ready)
        {
            return;
        }

        var now = _time.GetTimestamp();
        foreach (var pending in _outbox)
        {
            if (pending.SentEpoch == connection.Epoch || pending.RetryAt is not null)
            {
                continue;
            }

            connection.Enqueue(pending.Frame);
            pending.SentEpoch = connection.Epoch;
            pending.SentAt = now;
            pending.EverSent = true;
        }
    }

    private void SendJoinLocked(Connection connection, RoomSubscription subscription)
    {
        var id = NextRequestId();
        subscription.JoinId = id;
        subscription.JoinEpoch = connection.Epoch;
        subscription.RetryJoinAt = null;
        var payload = subscription.PositionValue is { } since ? System.Text.Encoding.UTF8.GetBytes($"{{\"since\":{since}}}") : null;
        connection.Enqueue(new OutboundFrame(MessageTypes.RoomJoin, subscription.Room, id, payload));
    }

    private PendingRequest AddRequestLocked(Connection connection, RequestKind kind, string? room)
    {
        var request = new PendingRequest(kind, NextRequestId(), room, _time.GetTimestamp());
        connection.Requests.Add(request.Id, request);
        return request;
    }

    /// <summary>Sends an idempotent request (sync, presence) on the open connection; a connection lost before the
    /// answer came is waited out and the request sent again on the next one.</summary>
    private async Task<Envelope> RequestAsync(RequestKind kind, string type, string room, byte[]? payload, CancellationToken ct)
    {
        while (true)
        {
            Task<Connection> ready;
            lock (Gate)
            {
                ThrowIfClosedLocked();
                ready = _ready.Task;
            }

            var connection = await ready.WaitAsync(ct).ConfigureAwait(false);
            PendingRequest request;
            lock (Gate)
            {
                if (_connection != connection || connection.Token.IsCancellationRequested)
                {
                    continue;
                }

                request = AddRequestLocked(connection, kind, room);
                connection.Enqueue(new OutboundFrame(type, room, request.Id, payload));
            }

            try
            {
                return await request.Completion.Task.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (BridgeException ex) when (ex.Code == "disconnected")
            {
                // The next connection answers.
            }
        }
    }

    private void ThrowIfClosedLocked()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_closedError is { } error)
        {
            throw new BridgeException(error.Code, error.Message);
        }
    }

    // ---- helpers -------------------------------------------------------------------------------------------

    private void SetState(ConnectionState state, EndInfo? end = null, int attempt = 0, TimeSpan? delay = null, Uri? uri = null)
    {
        ConnectionState previous;
        lock (Gate)
        {
            previous = _state;
            if (previous == ConnectionState.Closed)
            {
                return;
            }

            _state = state;
        }

        try
        {
            StateChanged?.Invoke(this, new ConnectionStateChangedEventArgs(state, previous)
            {
                Attempt = attempt,
                Delay = delay,
                CloseCode = end?.CloseCode,
                HttpStatus = end?.HttpStatus,
                Reason = end?.Reason,
                Uri = uri,
            });
        }
        catch (Exception)
        {
            // An application handler's bug must not stop the connection loop.
        }
    }

    private string NextRequestId() => "c" + Interlocked.Increment(ref _requestCounter).ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>16 random bytes, base64url (22 characters): unique without coordination, so a retry is recognised.</summary>
    private static string NewPublishId() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16));

    private long ToTimestampTicks(TimeSpan delay) => (long)(delay.TotalSeconds * _time.TimestampFrequency);

    /// <summary><c>http(s)://host</c> → <c>ws(s)://host/ws</c>; a ws URL is kept.</summary>
    internal static Uri ToWebSocketUri(Uri uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        var builder = new UriBuilder(uri);
        var defaultPort = builder.Uri.IsDefaultPort;
        builder.Scheme = builder.Scheme switch
        {
            "http" => "ws",
            "https" => "wss",
            _ => builder.Scheme,
        };
        if (defaultPort)
        {
            builder.Port = -1;
        }

        if (builder.Path is "" or "/")
        {
            builder.Path = "/ws";
        }

        return builder.Uri;
    }

    private static Uri WithToken(Uri uri, string? token)
    {
        if (token is null)
        {
            return uri;
        }

        var builder = new UriBuilder(uri);
        var query = builder.Query.TrimStart('?');
        builder.Query = (query.Length > 0 ? query + "&" : "") + "access_token=" + Uri.EscapeDataString(token);
        return builder.Uri;
    }
}
