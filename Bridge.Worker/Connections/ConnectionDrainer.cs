using Bridge.Contracts;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Connections;

/// <summary>
/// On shutdown (ApplicationStopping, which fires before any hosted service, the server included, is stopped;
/// readiness is already false then): tells every connection to reconnect elsewhere, each after its own random
/// delay within <see cref="ShutdownOptions.ReconnectSpread"/>, and waits up to four fifths of
/// <see cref="ShutdownOptions.DrainTimeout"/> for them to end. WebSockets are closed with 1012 and reason
/// <c>service restart; reconnect_after_ms=N</c>; SSE streams get a <c>server.shutdown</c> event and end.
/// Leaving their rooms removes their presence. The rest of the drain timeout is for in-flight requests.
/// </summary>
internal sealed partial class ConnectionDrainer(
    ConnectionTracker tracker,
    IHostApplicationLifetime lifetime,
    IOptions<ShutdownOptions> options,
    TimeProvider time,
    ILogger<ConnectionDrainer> logger) : IHostedService
{
    private Task _draining = Task.CompletedTask;
    private CancellationTokenRegistration _registration;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _registration = lifetime.ApplicationStopping.Register(() => _draining = DrainAsync(CancellationToken.None));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await _registration.DisposeAsync();
        await _draining.WaitAsync(cancellationToken);
    }

    private async Task DrainAsync(CancellationToken cancellationToken)
    {
        var open = tracker.Count;
        LogDraining(open);
        tracker.ShutdownAll((int)options.Value.ReconnectSpread.TotalMilliseconds);

        using var timeout = new CancellationTokenSource(options.Value.DrainTimeout * 0.8, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, cancellationToken);
        try
        {
            while (tracker.Count > 0)
            {
                await Task.Delay(TimeSpan.FromMilliseconds(20), time, linked.Token);
            }
        }
        catch (OperationCanceledException)
        {
            LogDrainIncomplete(tracker.Count);
        }
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Shutting down: telling {Connections} connections to reconnect elsewhere (1012 / server.shutdown)")]
    private partial void LogDraining(int connections);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Shutdown: {Connections} connections still open after the drain time; they are aborted")]
    private partial void LogDrainIncomplete(int connections);
}
