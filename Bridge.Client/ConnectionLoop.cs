using System.Net.WebSockets;
using Bridge.Client.Protocol;
using Bridge.Contracts;
using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// The client's connection loop: connects, runs the connection until it ends, decides how to come back (backoff
/// with full jitter; the worker's <c>reconnect_after_ms</c> after 1012; a new token at once after 4001/4003/401/403;
/// closing for good when the token provider has nothing new) and does it again until the client is disposed.
/// </summary>
internal sealed class ConnectionLoop
{
    private readonly BridgeClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConnectionStatus _status;
    private readonly RoomTable _rooms;
    private readonly Outbox _outbox;
    private readonly UriRotation _uris;
    private readonly TokenKeeper _tokens;
    private readonly Watchdog _watchdog;
    private readonly FrameDispatcher _dispatcher;
    private readonly RequestIds _ids = new();
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _lock = new();
    private Task? _run;
    private volatile bool _stopping;
    private int _epoch;

    public ConnectionLoop(BridgeClientOptions options, ILogger logger, ConnectionStatus status, RoomTable rooms, Outbox outbox)
    {
        _options = options;
        _time = options.TimeProvider;
        _logger = logger;
        _status = status;
        _rooms = rooms;
        _outbox = outbox;
        _uris = new UriRotation(options);
        _tokens = new TokenKeeper(options, logger);
        _watchdog = new Watchdog(options, outbox, rooms, logger);
        _dispatcher = new FrameDispatcher(rooms, outbox, logger);
    }

    /// <summary>Starts the loop once; later calls, and calls once it is stopping, do nothing.</summary>
    public void Start()
    {
        lock (_lock)
        {
            if (!_stopping)
            {
                _run ??= Task.Run(() => RunAsync(_stop.Token), CancellationToken.None);
            }
        }
    }

    /// <summary>Stops the loop: closes the current connection (1000, at most 2 s), then waits for the loop to end.</summary>
    public async Task StopAsync()
    {
        Task? run;
        lock (_lock)
        {
            _stopping = true; // the close below ends the connection: no reconnect after it
            run = _run;
        }

        if (_status.Current is { } connection)
        {
            await connection.CloseAsync().ConfigureAwait(false);
        }

        await _stop.CancelAsync().ConfigureAwait(false);
        if (run is not null)
        {
            await run.ConfigureAwait(false);
        }

        _stop.Dispose();
    }

    /// <summary>
    /// Closes the client for good: every publish waiting for its ack fails with <paramref name="error"/>'s code, every
    /// room ends (normally when <paramref name="disposed"/>, else with the error), and the state becomes
    /// <see cref="ConnectionState.Closed"/>.
    /// </summary>
    public void CloseForGood(BridgeException error, EndInfo? end, bool disposed)
    {
        if (!_status.TryClose(error))
        {
            return;
        }

        if (!disposed)
        {
            _logger.ClosedForGood(error.Code, error.Detail);
        }

        _outbox.Close(error);
        _rooms.Close(error, endNormally: disposed);
        _status.Set(ConnectionState.Closed, end);
    }

    private async Task RunAsync(CancellationToken ct)
    {
        _status.Set(ConnectionState.Connecting);
        var attempt = 0;
        while (!ct.IsCancellationRequested)
        {
            EndInfo end;
            try
            {
                await _tokens.EnsureFetchedAsync(ct).ConfigureAwait(false);
                end = await RunConnectionAsync(await _uris.NextAsync(ct).ConfigureAwait(false), ct).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception ex)
            {
                // A failing token or URL provider is retried like a failed connection.
                _logger.AttemptFailed(ex.Message, ex);
                end = new EndInfo { Reason = ex.Message };
            }

            if (ct.IsCancellationRequested || _stopping)
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
                delay = Backoff.ReconnectAfter(end.Reason) ?? Backoff.Delay(_options, 0);
            }
            else if (end.CloseCode is CloseCodes.TokenExpired or CloseCodes.Forbidden || end.HttpStatus is 401 or 403)
            {
                _logger.TokenRefused(end.CloseCode, end.HttpStatus);
                bool renewed;
                try
                {
                    renewed = await _tokens.RenewAfterRefusalAsync(ct).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (ct.IsCancellationRequested)
                {
                    return;
                }

                if (!renewed)
                {
                    CloseForGood(new BridgeException(ErrorCodes.Unauthorized, $"the server refused the token ({end.CloseCode ?? end.HttpStatus} {end.Reason}) and the token provider gave no new one"), end, disposed: false);
                    return;
                }

                attempt = 0;
                delay = TimeSpan.Zero;
            }
            else
            {
                delay = Backoff.Delay(_options, attempt);
            }

            _logger.Reconnecting(end.CloseCode, end.HttpStatus, end.Reason, (long)delay.TotalMilliseconds, attempt);
            _status.Set(ConnectionState.Reconnecting, end, attempt, delay);
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

    private async Task<EndInfo> RunConnectionAsync(Uri uri, CancellationToken ct)
    {
        _logger.Connecting(uri);
        var (socket, failed) = await OpenSocketAsync(uri, ct).ConfigureAwait(false);
        if (socket is null)
        {
            return failed!;
        }

        using var connection = new Connection(Interlocked.Increment(ref _epoch), socket, uri, _ids, _time, _logger, ct);
        _status.Attach(connection);
        var sender = connection.SendLoopAsync();
        var receiver = connection.ReceiveLoopAsync(_dispatcher.DispatchAsync);
        var watchdog = Task.CompletedTask;
        var refresher = Task.CompletedTask;
        var ready = false;
        try
        {
            var welcome = await connection.Welcome.WaitAsync(_options.OpenTimeout, _time, connection.Token).ConfigureAwait(false);
            var liveJoins = _rooms.Attach(connection, welcome);
            _logger.Connected(uri, welcome.ServerId, welcome.ConnectionId, welcome.User);
            _status.Opened(connection, welcome);
            watchdog = _watchdog.RunAsync(connection);
            refresher = _tokens.RefreshLoopAsync(connection);
            // Rooms joining live (no position yet) are joined before publishes go out, so the sender receives its own
            // messages; rooms with a position resume, so their order does not matter.
            await WaitForLiveJoinsAsync(connection, liveJoins).ConfigureAwait(false);
            if (!connection.Token.IsCancellationRequested)
            {
                _outbox.Attach(connection, welcome);
                _status.Ready(connection);
                ready = true;
            }
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            connection.Abort(ex is TimeoutException ? "no welcome or room.joined in time" : "closed");
        }

        var end = await receiver.ConfigureAwait(false);
        connection.Abort("closed");
        await Task.WhenAll(sender, watchdog, refresher).ConfigureAwait(false);
        end.WasReady = ready;

        // Forget the connection: unacknowledged publishes are sent again on the next one, rooms joined again,
        // requests fail with `disconnected` (idempotent ones are asked again on the next connection).
        _status.Detach(connection);
        _outbox.Detach(connection);
        _rooms.Detach(connection);
        connection.Requests.Close();
        return end;
    }

    /// <summary>
    /// Waits for the live joins' <c>room.joined</c> while the connection is alive: a frame arriving within
    /// <see cref="BridgeClientOptions.OpenTimeout"/> (another room's backlog, read at the application's pace, can be
    /// queued before the answer) keeps the wait going; a socket silent that long throws <see cref="TimeoutException"/>.
    /// </summary>
    private async Task WaitForLiveJoinsAsync(Connection connection, Task[] liveJoins)
    {
        if (liveJoins.Length == 0)
        {
            return;
        }

        var all = Task.WhenAll(liveJoins);
        while (true)
        {
            try
            {
                await all.WaitAsync(_options.OpenTimeout, _time, connection.Token).ConfigureAwait(false);
                return;
            }
            catch (TimeoutException) when (connection.SilentFor(_time.GetTimestamp()) < _options.OpenTimeout)
            {
            }
        }
    }

    private async Task<(ClientWebSocket? Socket, EndInfo? Failed)> OpenSocketAsync(Uri uri, CancellationToken ct)
    {
        var socket = new ClientWebSocket();
        // The batch subprotocol first (several envelopes per message: fewer receives), the plain one for an older worker.
        if (_options.ReceiveBatches)
        {
            socket.Options.AddSubProtocol(_options.Format == BridgeFormat.Json ? Subprotocols.JsonBatch : Subprotocols.MessagePackBatch);
        }

        socket.Options.AddSubProtocol(_options.Format == BridgeFormat.Json ? Subprotocols.Json : Subprotocols.MessagePack);
        socket.Options.CollectHttpResponseDetails = true;
        if (_options.KeepAliveInterval > TimeSpan.Zero)
        {
            // Unsolicited pongs only (no KeepAliveTimeout: no pong deadline), so proxies' idle timers see traffic. A
            // WebSocket ping's deadline would run while the client holds the socket back for a slow application, with
            // the pong queued behind the unread backlog: it aborted healthy connections. A dead connection is noticed
            // by the Watchdog instead, which sends bridge.ping and counts only the time the client waits on the socket.
            socket.Options.KeepAliveInterval = _options.KeepAliveInterval;
            socket.Options.KeepAliveTimeout = Timeout.InfiniteTimeSpan;
        }

        try
        {
            using var openTimeout = new CancellationTokenSource(_options.OpenTimeout, _time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, openTimeout.Token);
            await socket.ConnectAsync(UriRotation.WithToken(uri, _tokens.Current), linked.Token).ConfigureAwait(false);
            return (socket, null);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && ex is WebSocketException or OperationCanceledException or HttpRequestException)
        {
            var status = (int)socket.HttpStatusCode;
            socket.Dispose();
            return (null, new EndInfo { HttpStatus = status == 0 ? null : status, Reason = ex.Message });
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
