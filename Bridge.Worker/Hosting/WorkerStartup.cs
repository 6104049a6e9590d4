using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Hosting;

/// <summary>
/// Runs the worker and reports a start that fails, in one place and in words that say what to change: an invalid
/// setting (one line per failure, naming the key; exit code <see cref="ExitInvalidConfiguration"/>), an address
/// another process already listens on (one line naming it; <see cref="ExitAddressInUse"/>), anything else with
/// its exception (<see cref="ExitStartFailed"/>). The host's own record of a failed start, a full stack trace, is
/// left out (<see cref="HostStartFailureFilter"/>). Scripts (<c>scripts/run.sh</c>) read the exit code.
/// </summary>
internal static partial class WorkerStartup
{
    public const int ExitStartFailed = 1;
    public const int ExitInvalidConfiguration = 2;
    public const int ExitAddressInUse = 3;

    public static async Task<int> RunAsync(string[] args)
    {
        await using var app = BridgeApp.Build(args);
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Bridge.Worker.Startup");
        try
        {
            await app.StartAsync();
        }
        catch (Exception ex)
        {
            var code = Report(logger, ex);
            await StopStartedAsync(app, logger);
            return code;
        }

        await app.WaitForShutdownAsync();
        return 0;
    }

    /// <summary>How long a failed start waits for the services it had started to stop.</summary>
    internal static readonly TimeSpan StopAfterFailedStart = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Stops what a failed start had already started, before the container disposes what those services use: the
    /// hosted services start before the server binds, and some keep running beside the start (the join path's
    /// warm-up runs connections through the frame pipeline). Disposed under them, they failed with
    /// <see cref="ObjectDisposedException"/>s and their stack traces after the one line that says why the start failed.
    /// </summary>
    private static async Task StopStartedAsync(WebApplication app, ILogger logger)
    {
        using var timeout = new CancellationTokenSource(StopAfterFailedStart);
        try
        {
            await app.StopAsync(timeout.Token);
        }
        catch (Exception ex)
        {
            LogStopAfterFailedStartFailed(logger, StopAfterFailedStart.TotalSeconds, ex.Message);
        }
    }

    /// <summary>Logs why the start failed and returns the exit code for it.</summary>
    internal static int Report(ILogger logger, Exception exception)
    {
        IReadOnlyList<Exception> failures = exception is AggregateException aggregate ? aggregate.Flatten().InnerExceptions : [exception];
        if (failures.All(f => f is OptionsValidationException))
        {
            foreach (var message in failures.Cast<OptionsValidationException>().SelectMany(f => f.Failures))
            {
                LogInvalidSetting(logger, message);
            }

            return ExitInvalidConfiguration;
        }

        if (failures.FirstOrDefault(f => f is IOException { InnerException: AddressInUseException }) is { } bind)
        {
            LogAddressInUse(logger, bind.Message);
            return ExitAddressInUse;
        }

        LogStartFailed(logger, exception);
        return ExitStartFailed;
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Critical, Message = "Invalid configuration, the worker did not start: {Failure}")]
    private static partial void LogInvalidSetting(ILogger logger, string failure);

    // Kestrel's message names the address ("Failed to bind to address http://127.0.0.1:8080: address already in use.").
    [LoggerMessage(EventId = 4102, Level = LogLevel.Critical,
        Message = "{Detail} Another process listens there: stop it, or choose another address with --urls or ASPNETCORE_URLS (make run: WORKER_URL=http://127.0.0.1:8081).")]
    private static partial void LogAddressInUse(ILogger logger, string detail);

    [LoggerMessage(EventId = 4103, Level = LogLevel.Critical, Message = "The worker did not start")]
    private static partial void LogStartFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 4104, Level = LogLevel.Warning,
        Message = "After the failed start, the services it had started did not all stop within {TimeoutSeconds} s: {Reason}")]
    private static partial void LogStopAfterFailedStartFailed(ILogger logger, double timeoutSeconds, string reason);
}

/// <summary>
/// A console logger provider without one record: the host's "Hosting failed to start" (category
/// <c>Microsoft.Extensions.Hosting.Internal.Host</c>, event 11), which prints the failure's whole stack trace.
/// <see cref="WorkerStartup"/> reports every failed start itself. Everything else passes through unchanged.
/// </summary>
internal sealed class HostStartFailureFilter(ILoggerProvider inner) : ILoggerProvider, ISupportExternalScope
{
    private const string HostCategory = "Microsoft.Extensions.Hosting.Internal.Host";
    private const int HostedServiceStartupFaulted = 11;

    public ILogger CreateLogger(string categoryName)
    {
        var logger = inner.CreateLogger(categoryName);
        return categoryName == HostCategory ? new WithoutStartFailure(logger) : logger;
    }

    public void SetScopeProvider(IExternalScopeProvider scopeProvider) => (inner as ISupportExternalScope)?.SetScopeProvider(scopeProvider);

    public void Dispose() => inner.Dispose();

    private sealed class WithoutStartFailure(ILogger inner) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => inner.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => inner.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            if (eventId.Id != HostedServiceStartupFaulted)
            {
                inner.Log(logLevel, eventId, state, exception, formatter);
            }
        }
    }
}
