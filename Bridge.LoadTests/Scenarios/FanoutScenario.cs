using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// Fan-out on any target: the spec's connections subscribe (one room, or <paramref name="rooms"/> rooms split
/// evenly so each room has one subscriber), then a backend publishes per the spec's message simulation, spread
/// round-robin over the rooms. Used for WebSocket fan-out, SSE fan-out, many rooms and the peer benchmarks.
/// </summary>
internal sealed class FanoutScenario(ScenarioSpec spec, Func<IFanoutTarget> target, int rooms = 1) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var t = target();
        await t.StartAsync(ctx);
        var connections = spec.Find<LoadSimulation.KeepConstant>()?.Connections ?? spec.Find<LoadSimulation.RampConnections>()!.Target;
        var subscribers = await ctx.ConnectAsync((i, ct) => t.SubscribeAsync(RoomsOf(i, connections), ctx.Stats, ct));
        try
        {
            ctx.Metric("subscribers", $"{t.Name}: subscribers connected and joined", subscribers.Count);
            if (rooms > 1)
            {
                ctx.Metric("rooms", "rooms (one subscriber each)", rooms);
            }

            await using var publisher = await t.CreatePublisherAsync(ctx.Stats, ctx.Token);
            await ctx.InjectAsync(
                (n, ts) =>
                {
                    var room = (int)(n % rooms);
                    return publisher.PublishAsync(room, Harness.LoadPayload.Create(ts, n / rooms, room), ctx.Token);
                },
                rooms == 1 ? subscribers.Count : 1,
                () => publisher.FlushAsync(ctx.Token));
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(subscribers.Select(s => s.DisposeAsync().AsTask()));
        }
    }

    private int[] RoomsOf(int connection, int connections) =>
        rooms == 1 ? [0] : [.. Enumerable.Range(0, rooms).Where(r => r % connections == connection)];
}
