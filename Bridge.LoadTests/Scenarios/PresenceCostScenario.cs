using System.Diagnostics;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// What presence costs per join (issue 6): the same joins, by the same distinct users, into rooms without
/// presence (<c>bench.plain.*</c>) and then into rooms with it (<c>bench.presence.*</c>, the only pattern in
/// <c>Bridge:Presence:Rooms</c>), on one worker, in the same run. Each join in a presence room writes a key, and a
/// user's first join there also lists keys and stores a <c>presence.update</c>. Reports ms per join for both and
/// the ratio; the threshold only catches breakage (every join answered).
/// </summary>
internal sealed class PresenceCostScenario(ScenarioSpec spec, string configuration, int roomsPerClient) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var target = new BridgeTarget(configuration, BridgeTransport.Json, ("Bridge:Presence:Rooms:0", "bench.presence.>"));
        await target.StartAsync(ctx);
        var clients = await ctx.ConnectAsync((i, ct) =>
            LoadClient.ConnectAsync(target.Worker.WebSocketUrl, new LoadClientOptions { Token = BenchTokens.Mint($"user-{i}") }, ct));
        try
        {
            var joins = clients.Count * roomsPerClient;
            var plain = await JoinAllAsync(ctx, clients, "bench.plain", roomsPerClient, 0);
            var presence = await JoinAllAsync(ctx, clients, "bench.presence", roomsPerClient, joins);
            ctx.Metric("joins", "joins per phase (distinct users, each into its own share of rooms)", joins);
            ctx.Metric("plain_ms_per_join", "rooms without presence: wall time per join (all clients joining at once)", plain.TotalMilliseconds / joins, "ms");
            ctx.Metric("presence_ms_per_join", "rooms with presence: wall time per join", presence.TotalMilliseconds / joins, "ms");
            ctx.Metric("presence_ratio", "presence / plain (same run)", presence / plain);
            ctx.Metric("answered", "joins answered with room.joined (both phases)", clients.Sum(c => c.Joined));
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(clients.Select(c => c.DisposeAsync().AsTask()));
        }
    }

    private static async Task<TimeSpan> JoinAllAsync(ScenarioContext ctx, List<LoadClient> clients, string prefix, int perClient, long alreadyJoined)
    {
        ctx.Status = $"joining {prefix}.*";
        var rooms = clients.Count * perClient;
        var sw = Stopwatch.StartNew();
        // Users overlap in rooms (each room gets several users), as in a chat: client c joins rooms c, c+1, ...
        await Task.WhenAll(clients.Select(async (client, c) =>
        {
            for (var k = 0; k < perClient; k++)
            {
                await client.JoinAsync($"{prefix}.r{(c + k) % rooms}", ctx.Token);
            }
        }));
        await Rooms.WaitAsync(() => clients.Sum(c => c.Joined) >= alreadyJoined + rooms, $"every {prefix} room.joined", ctx.Token);
        return sw.Elapsed;
    }
}
