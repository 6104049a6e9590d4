using Bridge.Worker.Rooms;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

/// <summary>
/// After NATS.Net reconnects (it re-subscribes every live feed by itself), each active room is checked against
/// the stream and whatever was stored while the feed was away is delivered before anything newer. A pattern's feed
/// cannot see such a gap in its messages' own chains (RoomSequence): it is told of the drop when it happens, and checks
/// the stream before its next dispatch until this catch-up has run.
/// </summary>
internal sealed partial class FeedCatchUp(
    NatsContext nats, RoomRegistry rooms, Operations.BridgeMetrics metrics, ILogger<FeedCatchUp> logger)
    : IHostedService
{
    // Rooms checked at once after a reconnect: enough to catch up thousands of rooms in seconds without
    // flooding the server with requests the moment it is back.
    private const int Parallelism = 16;

    private readonly CancellationTokenSource _stopping = new();
    private readonly Lock _gate = new();
    private Task _running = Task.CompletedTask;
    private int _opened;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        nats.Connection.ConnectionOpened += OnConnectionOpenedAsync;
        nats.Connection.ConnectionDisconnected += OnConnectionDisconnectedAsync;
        return Task.CompletedTask;
    }

    private ValueTask OnConnectionDisconnectedAsync(object? sender, NatsEventArgs args)
    {
        foreach (var room in rooms.Snapshot())
        {
            if (room.Pattern is not null)
            {
                room.Sequence.MarkStale();
            }
        }

        return ValueTask.CompletedTask;
    }

    private ValueTask OnConnectionOpenedAsync(object? sender, NatsEventArgs args)
    {
        if (Interlocked.Increment(ref _opened) > 1)
        {
            metrics.NatsReconnected();
        }

        lock (_gate)
        {
            // Chained, so two quick reconnects never run two catch-ups of a room at once.
            _running = _running.ContinueWith(_ => CatchUpAllAsync(_stopping.Token), TaskScheduler.Default).Unwrap();
        }

        return ValueTask.CompletedTask;
    }

    private async Task CatchUpAllAsync(CancellationToken cancellationToken)
    {
        var active = rooms.Snapshot();
        if (active.Count == 0)
        {
            return;
        }

        LogCatchingUp(active.Count);
        try
        {
            await Parallel.ForEachAsync(
                active,
                new ParallelOptions { MaxDegreeOfParallelism = Parallelism, CancellationToken = cancellationToken },
                async (room, ct) =>
                {
                    try
                    {
                        await room.Sequence.CatchUpAsync(ct);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException)
                    {
                        // The next message of the room shows the gap and fills it.
                        LogCatchUpFailed(ex, room.Name);
                    }
                });
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        nats.Connection.ConnectionOpened -= OnConnectionOpenedAsync;
        nats.Connection.ConnectionDisconnected -= OnConnectionDisconnectedAsync;
        await _stopping.CancelAsync();
        Task running;
        lock (_gate)
        {
            running = _running;
        }

        await running.WaitAsync(cancellationToken);
    }

    [LoggerMessage(EventId = 1221, Level = LogLevel.Information, Message = "NATS connection (re)opened; catching up {Rooms} active rooms")]
    private partial void LogCatchingUp(int rooms);

    [LoggerMessage(EventId = 1222, Level = LogLevel.Warning, Message = "Catching up room {Room} failed")]
    private partial void LogCatchUpFailed(Exception exception, string room);
}
