using System.Diagnostics;
using Bridge.Client;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;
using HdrHistogram;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Connection storm: authenticated connects at a rate, each by the shipped .NET client (<see cref="BridgeClient"/>).
/// Every client gets its own HS256 token (<c>sub</c> = storm-i, minted before the storm so minting costs nothing
/// during it) in the <c>access_token</c> query parameter, and counts as connected when
/// <see cref="BridgeClient.ConnectAsync"/> returns (the worker's <c>welcome</c> arrived). Before the storm two raw probes say
/// whether the worker enforces tokens (a connect without one, and one signed with another key): a worker built
/// before authentication existed ignores tokens, and the storm then measures plain connects; the report says which.
/// </summary>
internal sealed class ConnectionStormScenario(ScenarioSpec spec, string configuration) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var target = new BridgeTarget(configuration, BridgeTransport.Json);
        await target.StartAsync(ctx);
        var url = target.Worker.WebSocketUrl;

        ctx.Status = "probing authentication";
        var withoutToken = await ProbeAsync(url, null, ctx.Token);
        var foreignKey = await ProbeAsync(url, BenchTokens.Mint("intruder", secret: new string('k', 64)), ctx.Token);
        var enforced = withoutToken != "accepted";
        ctx.Report.Add("worker enforces tokens", enforced
            ? $"yes: no token → {withoutToken}, token signed with another key → {foreignKey}"
            : "no (this worker predates authentication, or allows anonymous): tokens are sent and ignored");
        ctx.Metric("auth_enforced", "auth enforced (1 = yes)", enforced ? 1 : 0);
        ctx.Metric("foreign_token_accepted", "token signed with another key accepted (must be 0 when enforced)", enforced && foreignKey == "accepted" ? 1 : 0);

        var ramp = spec.Find<LoadSimulation.RampConnections>()!;
        ctx.Status = "minting tokens";
        var mint = Stopwatch.StartNew();
        var tokens = Enumerable.Range(0, ramp.Target).Select(i => BenchTokens.Mint($"storm-{i}")).ToArray();
        ctx.Metric("tokens_minted_per_s", "tokens minted per second (client side, before the storm)", ramp.Target / mint.Elapsed.TotalSeconds, "/s");

        var connectLatency = Latencies.Create();
        ctx.BeginMeasure();
        var sw = Stopwatch.StartNew();
        var clients = await ctx.ConnectAsync(async (i, ct) =>
        {
            var start = Stopwatch.GetTimestamp();
            var token = tokens[i];
            var client = new BridgeClient(new BridgeClientOptions { Uri = url, TokenProvider = _ => ValueTask.FromResult<string?>(token) });
            try
            {
                // The client retries a refused connect by itself: one that is not open in 30 s counts as failed.
                await client.ConnectAsync(ct).WaitAsync(TimeSpan.FromSeconds(30), ct);
            }
            catch
            {
                await client.DisposeAsync();
                throw;
            }

            connectLatency.RecordElapsed(start, Stopwatch.GetTimestamp());
            return client;
        });
        var elapsed = sw.Elapsed;
        ctx.EndMeasure();
        try
        {
            ctx.Metric("accepted", "connections accepted (welcome received)", clients.Count);
            ctx.Metric("accepted_ratio", "accepted / attempted", clients.Count / (double)ramp.Target);
            ctx.Metric("connects_per_s", "authenticated connects per second achieved", clients.Count / elapsed.TotalSeconds, "/s");
            if (connectLatency.TotalCount > 0)
            {
                ctx.Metric("connect_p50_ms", "connect → welcome p50", connectLatency.GetValueAtPercentile(50) / 1000.0, "ms");
                ctx.Metric("connect_p99_ms", "connect → welcome p99", connectLatency.GetValueAtPercentile(99) / 1000.0, "ms");
                ctx.Metric("connect_max_ms", "connect → welcome max", connectLatency.GetMaxValue() / 1000.0, "ms");
            }

            await Task.Delay(500, ctx.Token);
            ctx.Metric("still_open", "still open after the storm", clients.Count(c => c.State == ConnectionState.Open));
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
        }
    }

    /// <summary>"accepted", or the HTTP status / close code that refused the connection.</summary>
    private static async Task<string> ProbeAsync(Uri url, string? token, CancellationToken cancellationToken)
    {
        try
        {
            await using var client = await LoadClient.ConnectAsync(url, new LoadClientOptions { Token = token }, cancellationToken);
            await client.FirstFrame.WaitAsync(TimeSpan.FromSeconds(10), cancellationToken);
            return client.CloseStatus is { } code ? $"closed {code}" : "accepted";
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            return "refused " + ScenarioContext.Classify(ex);
        }
    }
}
