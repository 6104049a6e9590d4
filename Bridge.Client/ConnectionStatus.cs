namespace Bridge.Client;

/// <summary>
/// Where the client stands: its <see cref="ConnectionState"/>, the current connection and whether it is ready for
/// requests, what the last <c>welcome</c> said, and the error the client closed with. Raises the state changes.
/// </summary>
internal sealed class ConnectionStatus(Action<ConnectionStateChangedEventArgs> raise)
{
    private readonly Lock _lock = new();
    private readonly TaskCompletionSource _firstOpen = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private TaskCompletionSource<Connection> _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private ConnectionState _state = ConnectionState.Idle;
    private BridgeException? _closed;
    private Connection? _current;
    private volatile WelcomeInfo? _welcome;

    public ConnectionState State
    {
        get
        {
            lock (_lock)
            {
                return _state;
            }
        }
    }

    /// <summary>The current (or last) connection's <c>welcome</c>.</summary>
    public WelcomeInfo? Welcome => _welcome;

    /// <summary>The open socket, to close when the client is disposed.</summary>
    public Connection? Current
    {
        get
        {
            lock (_lock)
            {
                return _current;
            }
        }
    }

    /// <summary>Completes when the first connection is open; fails when the client closes for good before.</summary>
    public Task FirstOpen => _firstOpen.Task;

    /// <summary>Throws <see cref="BridgeException"/> with the code the client closed with, if it did.</summary>
    public void ThrowIfClosed()
    {
        lock (_lock)
        {
            if (_closed is { } closed)
            {
                throw closed.Again();
            }
        }
    }

    /// <summary>The next connection that is ready for requests (now, if one is). Throws when the client closed for good.</summary>
    public Task<Connection> WhenReady()
    {
        lock (_lock)
        {
            if (_closed is { } closed)
            {
                throw closed.Again();
            }

            return _ready.Task;
        }
    }

    /// <summary>A socket is open (not welcomed yet).</summary>
    public void Attach(Connection connection)
    {
        lock (_lock)
        {
            _current = connection;
        }
    }

    /// <summary>The server said <c>welcome</c>: the state is <see cref="ConnectionState.Open"/>.</summary>
    public void Opened(Connection connection, WelcomeInfo welcome)
    {
        _welcome = welcome;
        Set(ConnectionState.Open, uri: connection.Uri);
        _firstOpen.TrySetResult();
    }

    /// <summary>Welcomed and the live joins answered: requests may go out on it.</summary>
    public void Ready(Connection connection)
    {
        lock (_lock)
        {
            if (_current == connection)
            {
                _ready.TrySetResult(connection);
            }
        }
    }

    /// <summary>The connection ended: requests wait for the next one.</summary>
    public void Detach(Connection connection)
    {
        lock (_lock)
        {
            if (_current == connection)
            {
                _current = null;
            }

            if (_ready.Task.IsCompleted && _closed is null)
            {
                _ready = new TaskCompletionSource<Connection>(TaskCreationOptions.RunContinuationsAsynchronously);
            }
        }
    }

    /// <summary>
    /// The client closed for good: false if it already had. Fails the waits for a ready connection; the first connect's
    /// wait fails when the state then moves to <see cref="ConnectionState.Closed"/> (<see cref="Set"/>).
    /// </summary>
    public bool TryClose(BridgeException error)
    {
        lock (_lock)
        {
            if (_closed is not null || _state == ConnectionState.Closed)
            {
                return false;
            }

            _closed = error;
            _ready.TrySetException(error);
            _ = _ready.Task.Exception; // observed: nobody may be waiting for it
        }

        return true;
    }

    /// <summary>Moves to <paramref name="state"/> (never out of <see cref="ConnectionState.Closed"/>) and raises the change.</summary>
    public void Set(ConnectionState state, EndInfo? end = null, int attempt = 0, TimeSpan? delay = null, Uri? uri = null)
    {
        ConnectionState previous;
        lock (_lock)
        {
            previous = _state;
            if (previous == ConnectionState.Closed)
            {
                return;
            }

            _state = state;
        }

        raise(new ConnectionStateChangedEventArgs(state, previous)
        {
            Attempt = attempt,
            Delay = delay,
            CloseCode = end?.CloseCode,
            HttpStatus = end?.HttpStatus,
            Reason = end?.Reason,
            Uri = uri,
        });

        // The first ConnectAsync fails only once the state says Closed and the change was raised: its caller sees both.
        if (state == ConnectionState.Closed && _closed is { } error)
        {
            _firstOpen.TrySetException(error);
            _ = _firstOpen.Task.Exception; // observed: nobody may be waiting for it
        }
    }
}
