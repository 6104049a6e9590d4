using System.Diagnostics;
using Bridge.Client;
using Microsoft.Extensions.Logging;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// An application on the shipped .NET client (<see cref="BridgeClient"/>), so the failure tests and the storm
/// scenarios exercise its reconnect logic: it joins its rooms and reads each from
/// <see cref="RoomSubscription.ReadAllAsync"/>, and may publish to one of them at a steady rate, one message at a
/// time, each with an id of its own. Everything else is the client's: reconnecting (backoff, 1012's spread delay,
/// the next of several workers), resuming every room from its last <c>seq</c>, dropping duplicates, and sending
/// unacknowledged publishes again with the same id. This class only records what the application sees.
/// </summary>
internal sealed class AppClient : IAsyncDisposable
{
    private readonly int _index;
    private readonly string[] _rooms;
    private readonly BridgeClient _client;
    private readonly ClientEvents _events = new();
    private readonly Lock _lock = new();
    private readonly Dictionary<string, RoomRecord> _state;
    private readonly List<long> _arrivals = [];
    private readonly List<(string Room, string Id, ulong Seq)> _acked = [];
    private readonly List<string> _closes = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _stopPublishing = new();
    private readonly List<Task> _readers = [];
    private Task _publishLoop = Task.CompletedTask;
    private int _connections;
    private int _disconnects;
    private int _appRetries;

    /// <param name="index">The client's number: its publish ids are <c>c{index}-{n}</c>.</param>
    /// <param name="options">The client's settings (where, token, backoff); its <see cref="BridgeClientOptions.LoggerFactory"/> is replaced.</param>
    /// <param name="rooms">The rooms it joins.</param>
    public AppClient(int index, BridgeClientOptions options, string[] rooms)
    {
        _index = index;
        _rooms = rooms;
        _state = rooms.ToDictionary(r => r, _ => new RoomRecord(), StringComparer.Ordinal);
        options.LoggerFactory = _events;
        _client = new BridgeClient(options);
        _client.StateChanged += OnStateChanged;
    }

    /// <summary>The worker of the current connection (from <c>welcome</c>), or null while not connected.</summary>
    public string? Server => _client.State == ConnectionState.Open ? _client.ServerId : null;

    /// <summary>Connections opened, the first included.</summary>
    public int Connections => Volatile.Read(ref _connections);

    /// <summary>Publishes sent again: by the client (after <c>publish_failed</c> or <c>rate_limited</c>, its log event
    /// 7009) and by this application (after the client gave up on one).</summary>
    public int PublishRetries => _events.Count(7009) + Volatile.Read(ref _appRetries);

    /// <summary>Messages <see cref="RoomSubscription.ReadAllAsync"/> handed over twice (same seq): the client's
    /// de-duplication failed. Must be 0.</summary>
    public long DuplicateDeliveries { get { lock (_lock) { return _state.Values.Sum(s => s.DuplicateDeliveries); } } }

    /// <summary>Messages <see cref="RoomSubscription.ReadAllAsync"/> handed over, duplicates included.</summary>
    public long Deliveries { get { lock (_lock) { return _state.Values.Sum(s => s.Messages.Count + s.DuplicateDeliveries); } } }

    public IReadOnlyList<(string Room, string Id, ulong Seq)> Acked { get { lock (_lock) { return [.. _acked]; } } }

    /// <summary>Why each connection ended, as the client reported it (close code and reason, HTTP status, error).</summary>
    public IReadOnlyList<string> Closes { get { lock (_lock) { return [.. _closes]; } } }

    /// <summary>What the client warned about (refused publishes and joins, dead connections...) and what the application caught.</summary>
    public IReadOnlyList<string> Errors => _events.Warnings;

    /// <summary>Arrival times (Stopwatch timestamps) of every new message, in order.</summary>
    public IReadOnlyList<long> Arrivals { get { lock (_lock) { return [.. _arrivals]; } } }

    /// <summary>
    /// True while connected and every room has been joined (resumed) since the last connection ended: the client
    /// raises <see cref="ConnectionState.Reconnecting"/> after the old connection is gone and the rooms' next
    /// <c>room.joined</c> only on the new one.
    /// </summary>
    public bool Ready
    {
        get
        {
            lock (_lock)
            {
                return _client.State == ConnectionState.Open && _state.Values.All(s => s.JoinedAfter == _disconnects);
            }
        }
    }

    /// <summary>The position of the first <c>room.joined</c> of <paramref name="room"/>: every later message is owed to this client.</summary>
    public ulong? StartOf(string room) { lock (_lock) { return _state[room].Start; } }

    /// <summary>The seqs of <paramref name="room"/> received, each once.</summary>
    public IReadOnlySet<ulong> Received(string room) { lock (_lock) { return new HashSet<ulong>(_state[room].Seen); } }

    /// <summary>Message ids of <paramref name="room"/> received with their seqs (one entry per seq).</summary>
    public IReadOnlyList<(ulong Seq, string? Id)> ReceivedWithIds(string room) { lock (_lock) { return [.. _state[room].Messages]; } }

    /// <summary>Connects and joins every room; returns once all are joined.</summary>
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        await _client.ConnectAsync(cancellationToken);
        foreach (var room in _rooms)
        {
            var subscription = await _client.JoinAsync(room, cancellationToken: cancellationToken);
            lock (_lock)
            {
                var record = _state[room];
                record.Start = subscription.LastJoin!.Seq;
                record.JoinedAfter = _disconnects;
            }

            subscription.Joined += (_, _) => OnJoined(room);
            _readers.Add(Task.Run(() => ReadAsync(subscription), CancellationToken.None));
        }
    }

    private void OnStateChanged(object? sender, ConnectionStateChangedEventArgs change)
    {
        lock (_lock)
        {
            if (change.State == ConnectionState.Open)
            {
                _connections++;
            }
            else if (change.State == ConnectionState.Reconnecting)
            {
                // Raised once the connection is gone (or an attempt failed): rooms must be joined again from here.
                _disconnects++;
                // 1012's reason carries a random spread delay: left out, so the report can group the closes.
                var reason = change.Reason?.Split("; reconnect_after_ms=")[0];
                _closes.Add(change.CloseCode is { } code ? $"{code} {reason}".Trim()
                    : change.HttpStatus is { } status ? $"HTTP {status}"
                    : "dropped");
            }
        }
    }

    private void OnJoined(string room)
    {
        lock (_lock)
        {
            _state[room].JoinedAfter = _disconnects;
        }
    }

    private async Task ReadAsync(RoomSubscription subscription)
    {
        var record = _state[subscription.Room];
        try
        {
            await foreach (var message in subscription.ReadAllAsync(_stop.Token))
            {
                lock (_lock)
                {
                    if (record.Seen.Add(message.Seq))
                    {
                        record.Messages.Add((message.Seq, message.Id));
                        _arrivals.Add(Stopwatch.GetTimestamp());
                    }
                    else
                    {
                        record.DuplicateDeliveries++;
                    }
                }
            }
        }
        catch (OperationCanceledException) when (_stop.IsCancellationRequested)
        {
        }
        catch (BridgeException ex)
        {
            // The client gave the room up (a join refused for good): the checks will show what was lost.
            _events.Add($"room {subscription.Room} ended: {ex.Code}");
        }
    }

    /// <summary>Publishes <c>load.tick</c> messages to <paramref name="room"/>, <paramref name="perSecond"/> a second, each waiting for its ack.</summary>
    public void StartPublishing(string room, int perSecond) =>
        _publishLoop = Task.Run(() => PublishLoopAsync(room, TimeSpan.FromSeconds(1.0 / perSecond), _stopPublishing.Token, _stop.Token));

    /// <summary>Stops publishing new messages; the one in flight is waited for until it is acknowledged.</summary>
    public Task StopPublishingAsync()
    {
        _stopPublishing.Cancel();
        return _publishLoop;
    }

    private async Task PublishLoopAsync(string room, TimeSpan interval, CancellationToken stopPublishing, CancellationToken stop)
    {
        var sw = Stopwatch.StartNew();
        for (var n = 1; !stopPublishing.IsCancellationRequested; n++)
        {
            var wait = interval * n - sw.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                try
                {
                    await Task.Delay(wait, stopPublishing);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }

            var id = $"c{_index}-{n}";
            while (true)
            {
                try
                {
                    var ack = await _client.PublishAsync(room, "load.tick", new { c = _index, n }, id, stop);
                    lock (_lock)
                    {
                        _acked.Add((room, id, ack.Seq));
                    }

                    break;
                }
                catch (BridgeException ex) when (ex.Code is "publish_failed" or "rate_limited")
                {
                    // The client tried MaxPublishAttempts times; an application that must not lose it tries again, same id.
                    Interlocked.Increment(ref _appRetries);
                    _events.Add($"publish gave up: {ex.Code}");
                    await Task.Delay(TimeSpan.FromMilliseconds(200), stop);
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stopPublishing.Cancel();
        await _stop.CancelAsync();
        await _client.DisposeAsync();
        try
        {
            await Task.WhenAll([_publishLoop, .. _readers]);
        }
        catch (Exception ex) when (ex is OperationCanceledException or BridgeException)
        {
        }

        _stop.Dispose();
        _stopPublishing.Dispose();
    }

    private sealed class RoomRecord
    {
        public ulong? Start { get; set; }

        /// <summary>The number of connection ends before its last <c>room.joined</c>.</summary>
        public int JoinedAfter { get; set; } = -1;

        public HashSet<ulong> Seen { get; } = [];

        public List<(ulong Seq, string? Id)> Messages { get; } = [];

        public long DuplicateDeliveries { get; set; }
    }

    /// <summary>The client's warnings (and errors), counted by event id, as text for the report.</summary>
    private sealed class ClientEvents : ILoggerFactory, ILogger
    {
        private readonly Lock _lock = new();
        private readonly Dictionary<int, int> _counts = [];
        private readonly List<string> _warnings = [];

        public IReadOnlyList<string> Warnings { get { lock (_lock) { return [.. _warnings]; } } }

        public int Count(int eventId) { lock (_lock) { return _counts.GetValueOrDefault(eventId); } }

        public void Add(string warning) { lock (_lock) { _warnings.Add(warning); } }

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            var code = state is IReadOnlyList<KeyValuePair<string, object?>> fields
                ? fields.FirstOrDefault(f => f.Key is "Code" or "Reason").Value?.ToString()
                : null;
            lock (_lock)
            {
                _counts[eventId.Id] = _counts.GetValueOrDefault(eventId.Id) + 1;
                _warnings.Add($"{eventId.Name}{(code is null ? "" : $" ({code})")}");
            }
        }

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public ILogger CreateLogger(string categoryName) => this;

        public void AddProvider(ILoggerProvider provider)
        {
        }

        public void Dispose()
        {
        }
    }
}
