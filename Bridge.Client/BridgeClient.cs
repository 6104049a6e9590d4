using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// A Bridge connection that survives drops (docs/protocol.md): it reconnects with exponential backoff and full
/// jitter (after close 1012 at the server's <c>reconnect_after_ms</c>, to the next worker), asks for a new token
/// after 4001/4003/HTTP 401, resumes every joined room from its last <c>seq</c> and drops duplicates, and sends
/// unacknowledged publishes again in order with their original ids, so the server stores each once.
/// </summary>
/// <remarks>Thread-safe. Events run on the client's loops: keep handlers short; exceptions they throw are logged and ignored.</remarks>
public sealed partial class BridgeClient : IAsyncDisposable
{
    // A thin facade: it validates arguments and asks the owners. ConnectionLoop owns the connections (and through them
    // the socket loops, the watchdog and the token); RoomTable the rooms held and their joins, a RoomFeed each room's
    // position and buffer; Outbox the publishes waiting for their ack; each Connection's RequestTracker its requests;
    // ConnectionStatus the state, the current connection and the error the client closed with.
    private readonly BridgeClientOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConnectionStatus _status;
    private readonly RoomTable _rooms;
    private readonly Outbox _outbox;
    private readonly ConnectionLoop _loop;
    private volatile bool _disposed;

    /// <summary>
    /// Creates a client; nothing connects before <see cref="ConnectAsync"/>. Throws <see cref="ArgumentNullException"/>
    /// when <paramref name="options"/> is null and <see cref="ArgumentException"/> when a setting is out of range
    /// (see <see cref="BridgeClientOptions"/>). The options are read once, here: later changes to them do nothing.
    /// </summary>
    public BridgeClient(BridgeClientOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _options = options;
        _time = options.TimeProvider;
        _logger = options.LoggerFactory.CreateLogger<BridgeClient>();
        _status = new ConnectionStatus(RaiseStateChanged);
        _rooms = new RoomTable(options, _logger);
        _outbox = new Outbox(options, _logger);
        _loop = new ConnectionLoop(options, _logger, _status, _rooms, _outbox);
    }

    /// <summary>
    /// Raised on every state change, with why the last connection ended (close code, HTTP status, reason) and the
    /// delay before the next attempt. Runs on the connection loop: keep it short; an exception it throws is logged
    /// and ignored.
    /// </summary>
    public event EventHandler<ConnectionStateChangedEventArgs>? StateChanged;

    /// <summary>The connection state now (it may change at any moment; <see cref="StateChanged"/> reports each change).</summary>
    public ConnectionState State => _status.State;

    /// <summary>The worker of the current (or last) connection: <c>serverId</c> from its <c>welcome</c>; null before the first.</summary>
    public string? ServerId => _status.Welcome?.ServerId;

    /// <summary>The current (or last) connection's id: <c>connectionId</c> from its <c>welcome</c>; null before the first.</summary>
    public string? ConnectionId => _status.Welcome?.ConnectionId;

    /// <summary>The user the server sees: <c>user</c> from the <c>welcome</c> (the token's <c>sub</c>, or <c>anonymous</c>); null before the first.</summary>
    public string? User => _status.Welcome?.User;

    /// <summary>Publishes waiting for their ack now: queued while disconnected, in flight, or waiting for a retry
    /// (at most <see cref="BridgeClientOptions.MaxQueuedPublishes"/>).</summary>
    public int PendingPublishes => _outbox.Count;

    /// <summary>
    /// Starts the connection loop (once) and completes when the first connection is open (the server said
    /// <c>welcome</c>). The loop keeps reconnecting after that until the client is disposed. Throws
    /// <see cref="BridgeException"/> (<c>unauthorized</c>) when the client closes for good first (a refused token and
    /// no new one), <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is cancelled
    /// (the loop goes on), and <see cref="ObjectDisposedException"/> after <see cref="DisposeAsync"/>.
    /// </summary>
    public Task ConnectAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _loop.Start();
        return _status.FirstOpen.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Closes the connection (1000, waiting at most 2 s for the handshake), ends every room's enumerable normally,
    /// and fails publishes still waiting for their ack with <see cref="BridgeException"/> <c>closed</c>. Calling it
    /// again does nothing.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        await _loop.StopAsync().ConfigureAwait(false);
        _loop.CloseForGood(new BridgeException("closed", "the client was disposed"), null, disposed: true);
    }

    private void ThrowIfClosed()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _status.ThrowIfClosed();
    }

    private void RaiseStateChanged(ConnectionStateChangedEventArgs change)
    {
        try
        {
            StateChanged?.Invoke(this, change);
        }
        catch (Exception ex)
        {
            // An application handler's bug must not stop the connection loop.
            _logger.HandlerFailed(nameof(StateChanged), ex);
        }
    }
}
