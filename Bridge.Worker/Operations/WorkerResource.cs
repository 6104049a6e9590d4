using Bridge.Worker.Core;
using Microsoft.Extensions.Options;
using OpenTelemetry.Resources;

namespace Bridge.Worker.Operations;

/// <summary>
/// The OpenTelemetry resource of this worker: <c>service.name</c> <see cref="ServiceName"/> and
/// <c>service.instance.id</c> the worker's id (<c>Bridge:Worker:Id</c>), which <c>/metrics</c> shows on
/// <c>target_info</c> (without it, <c>unknown_service:dotnet</c>).
/// </summary>
internal sealed class WorkerResource(IOptions<WorkerOptions> worker) : IResourceDetector
{
    public const string ServiceName = "bridge-worker";

    public Resource Detect() => new([new("service.name", ServiceName), new("service.instance.id", worker.Value.Id)]);
}
