using Bridge.Contracts;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Connections;

/// <summary>
/// Closes connections that make no progress: frames waiting and none written for
/// <see cref="ConnectionOptions.StallTimeout"/> (4008, <c>stalled</c>). A client that reads, however slowly, is not
/// stalled: its rooms pause at its queue's high-water mark and it reads them from the stream. One sweep over the
/// open connections a second (or a quarter of the timeout, if shorter) costs a few field reads per connection and
/// no timer per connection.
/// </summary>
internal sealed partial class StallDetector(
    ConnectionTracker tracker, IOptions<ConnectionOptions> options, TimeProvider time, ILogger<StallDetector> logger) : IHostedService, IDisposable
{
    private ITimer? _timer;
    private int _sweeping;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        var timeout = options.Value.StallTimeout;
        var interval = TimeSpan.FromTicks(Math.Min(TimeSpan.FromSeconds(1).Ticks, timeout.Ticks / 4));
        _timer = time.CreateTimer(static s => ((StallDetector)s!).Sweep(), this, interval, interval);
        return Task.CompletedTask;
    }

    /// <summary>One sweep: closes every connection stalled for the timeout.</summary>
    internal void Sweep()
    {
        // A sweep that overruns its interval is not run twice at once (each queue's stall state has one reader).
        if (Interlocked.Exchange(ref _sweeping, 1) == 1)
        {
            return;
        }

        try
        {
            SweepOnce();
        }
        finally
        {
            Volatile.Write(ref _sweeping, 0);
        }
    }

    private void SweepOnce()
    {
        var timeout = options.Value.StallTimeout;
        var now = time.GetTimestamp();
        foreach (var session in tracker.Sessions)
        {
            if (session.CloseRequested is null && session.Queue.IsStalled(now, timeout, time))
            {
                LogStalled(session.ConnectionId, session.Queue.Count, (int)timeout.TotalSeconds);
                session.RequestClose(CloseCodes.SlowConsumer, $"stalled: nothing written for {(int)timeout.TotalSeconds} s");
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _timer?.Dispose();
        return Task.CompletedTask;
    }

    public void Dispose() => _timer?.Dispose();

    [LoggerMessage(EventId = 4011, Level = LogLevel.Debug, Message = "Connection {ConnectionId} stalled: {Frames} frames waiting, none written for {Seconds} s; closing with 4008")]
    private partial void LogStalled(string connectionId, int frames, int seconds);
}
