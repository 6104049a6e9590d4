using Microsoft.Extensions.Options;

namespace Bridge.Worker.Connections;

/// <summary>Graceful shutdown (section <c>Bridge:Shutdown</c>).</summary>
internal sealed class ShutdownOptions
{
    public const string Section = "Bridge:Shutdown";

    /// <summary>
    /// The whole shutdown, from SIGTERM to exit: connections are told to go and given most of it, in-flight
    /// requests finish, then the process exits. Keep it under Kubernetes' terminationGracePeriodSeconds (30 s).
    /// </summary>
    public TimeSpan DrainTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>
    /// Window of the random delay each client is told to wait before reconnecting (<c>reconnect_after_ms</c>),
    /// so that a restarting worker's clients do not all land on the others at the same instant.
    /// </summary>
    public TimeSpan ReconnectSpread { get; set; } = TimeSpan.FromSeconds(5);
}

internal sealed class ShutdownOptionsValidator : IValidateOptions<ShutdownOptions>
{
    public ValidateOptionsResult Validate(string? name, ShutdownOptions o)
    {
        var failures = new List<string>();
        if (o.DrainTimeout < TimeSpan.FromSeconds(1) || o.DrainTimeout > TimeSpan.FromMinutes(10))
        {
            failures.Add("Bridge:Shutdown:DrainTimeout must be between 1 s and 10 minutes.");
        }

        if (o.ReconnectSpread < TimeSpan.Zero || o.ReconnectSpread > TimeSpan.FromMinutes(5))
        {
            failures.Add("Bridge:Shutdown:ReconnectSpread must be between 0 and 5 minutes.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}

/// <summary>The host's own stop timeout is the drain timeout: in-flight requests get until then, then the process exits.</summary>
internal sealed class HostShutdownTimeout(IOptions<ShutdownOptions> shutdown) : IConfigureOptions<HostOptions>
{
    public void Configure(HostOptions options) => options.ShutdownTimeout = shutdown.Value.DrainTimeout;
}
