using Microsoft.Extensions.Options;

namespace Bridge.Worker.Core;

/// <summary>Identity of this worker (section <c>Bridge:Worker</c>).</summary>
internal sealed class WorkerOptions
{
    public const string Section = "Bridge:Worker";

    /// <summary>Server id announced in <c>welcome</c> and used as the NATS connection name. Defaults to host name plus a random suffix.</summary>
    public string Id { get; set; } = $"{Environment.MachineName}-{Guid.NewGuid().ToString("N")[..6]}";
}

internal sealed class WorkerOptionsValidator : IValidateOptions<WorkerOptions>
{
    public ValidateOptionsResult Validate(string? name, WorkerOptions options) =>
        string.IsNullOrWhiteSpace(options.Id) || options.Id.Length > 64
            ? ValidateOptionsResult.Fail("Bridge:Worker:Id must be 1-64 characters.")
            : ValidateOptionsResult.Success;
}
