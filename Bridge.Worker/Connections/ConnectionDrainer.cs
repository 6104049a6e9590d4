using Bridge.Contracts;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Connections;

/// <summary>
/// On shutdown, asks every open connection to close with 1012 (service restart: reconnect at once and resume)
/// and waits, up to <see cref="ConnectionOptions.CloseTimeout"/>, for them to end, so the server never has to
/// abort streams that would otherwise run for ever. It acts on ApplicationStopping, which fires before any
/// hosted service (the server included) is stopped.
/// </summary>
internal sealed partial class ConnectionDrainer(
    ConnectionTracker tracker,
    IHostApplicationLifetime lifetime,
    IOptions<ConnectionOptions> options,
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
        if (open == 0)
        {
            return;
        }

        LogDraining(open);
        foreach (var session in tracker.Sessions)
        {
            session.RequestClose(CloseCodes.ServiceRestart, "service restart");
        }

        using var timeout = new CancellationTokenSource(options.Value.CloseTimeout, time);
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

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "Shutting down: closing {Connections} connections with 1012")]
    private partial void LogDraining(int connections);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "Shutdown: {Connections} connections still open after the close timeout")]
    private partial void LogDrainIncomplete(int connections);
}
