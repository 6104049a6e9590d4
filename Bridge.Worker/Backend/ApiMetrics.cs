using System.Diagnostics.Metrics;
using Bridge.Worker.Operations;

namespace Bridge.Worker.Backend;

/// <summary>The backend API's instruments, on the worker's meter (<see cref="BridgeMetrics.MeterName"/>, exported on <c>/metrics</c>).</summary>
internal sealed class ApiMetrics
{
    private readonly Counter<long> _requests;
    private readonly BridgeMetrics _bridge;

    public ApiMetrics(IMeterFactory meters, BridgeMetrics bridge)
    {
        ArgumentNullException.ThrowIfNull(meters);
        _bridge = bridge;
        // The factory hands out the one meter of this name, so these instruments sit beside the worker's own.
        _requests = meters.Create(BridgeMetrics.MeterName).CreateCounter<long>(
            "bridge.api.requests", description: "Backend API requests, by operation, adapter (api_key, admin_token, nats) and status.");
    }

    public void Request(string op, string via, int status) =>
        _requests.Add(
            1,
            new KeyValuePair<string, object?>("op", Backend.ApiDispatcher.Operations.Contains(op) ? op : "unknown"),
            new KeyValuePair<string, object?>("via", via),
            new KeyValuePair<string, object?>("status", status));

    /// <summary>A request or credential refused: counted with the worker's other refusals.</summary>
    public void AuthFailed(string reason) => _bridge.AuthFailed("api_" + reason);

    public void RateLimited() => _bridge.RateLimited("api");
}
