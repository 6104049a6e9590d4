using Bridge.Worker.Nats;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Hosting;

/// <summary>
/// <c>/healthz</c>: the process is alive. <c>/readyz</c>: the worker should get traffic: NATS connected, the
/// stream reachable, the join path warmed up (<see cref="JoinWarmUp"/>), and not shutting down (readiness turns false the moment shutdown starts, before the
/// connections are closed, so a load balancer stops sending new ones).
/// </summary>
internal sealed class HealthEndpoints(NatsContext nats, JoinWarmUp warmUp, IOptions<NatsOptions> options, IHostApplicationLifetime lifetime, TimeProvider time)
{
    // The stream check is a JetStream API request: cached briefly so frequent probes cost the server nothing.
    private static readonly TimeSpan StreamCheckTtl = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan StreamCheckTimeout = TimeSpan.FromSeconds(2);

    private readonly SemaphoreSlim _checking = new(1, 1);
    private (DateTimeOffset At, bool Ok) _lastStreamCheck;

    public static IResult Live() => Results.Text("ok");

    public async Task<IResult> ReadyAsync(CancellationToken cancellationToken)
    {
        var failures = new List<string>();
        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            failures.Add("shutting down");
        }

        if (!warmUp.Completed)
        {
            failures.Add("warming up");
        }

        if (nats.Connection.ConnectionState != NatsConnectionState.Open)
        {
            failures.Add($"NATS {nats.Connection.ConnectionState}".ToLowerInvariant());
        }
        else if (!await StreamReachableAsync(cancellationToken))
        {
            failures.Add($"stream {options.Value.StreamName} unreachable");
        }

        return failures.Count == 0
            ? Results.Text("ready")
            : Results.Json(new Dictionary<string, object> { ["ready"] = false, ["reasons"] = failures }, statusCode: StatusCodes.Status503ServiceUnavailable);
    }

    private async Task<bool> StreamReachableAsync(CancellationToken cancellationToken)
    {
        if (time.GetUtcNow() - _lastStreamCheck.At < StreamCheckTtl)
        {
            return _lastStreamCheck.Ok;
        }

        await _checking.WaitAsync(cancellationToken);
        try
        {
            if (time.GetUtcNow() - _lastStreamCheck.At < StreamCheckTtl)
            {
                return _lastStreamCheck.Ok;
            }

            bool ok;
            try
            {
                using var deadline = new CancellationTokenSource(StreamCheckTimeout, time);
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
                await nats.JetStream.GetStreamAsync(options.Value.StreamName, cancellationToken: timeout.Token);
                ok = true;
            }
            catch (Exception ex) when (ex is NatsException or OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                ok = false;
            }

            _lastStreamCheck = (time.GetUtcNow(), ok);
            return ok;
        }
        finally
        {
            _checking.Release();
        }
    }
}
