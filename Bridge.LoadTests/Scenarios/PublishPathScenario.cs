using System.Diagnostics;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Peers;

namespace Bridge.LoadTests.Scenarios;

/// <summary>
/// What limits the many-rooms fan-out (docs/benchmarks.md, "10,000 rooms within 10% of one room"): in the same run
/// and against the same nats-server and worker, the backend's JetStream publish rate alone (stored and acked,
/// 256 in flight, nobody subscribed) to one room and spread over N rooms, then the same burst spread over N rooms
/// with one WebSocket subscriber per room (100 connections), delivered/s. When the last is close to the publish
/// rate alone, the publish path (store + ack per message), not the worker's fan-out, is the limit.
/// </summary>
internal sealed class PublishPathScenario(ScenarioSpec spec, string configuration, int rooms, int messages) : IScenario
{
    public ScenarioSpec Spec => spec;

    public async Task RunAsync(ScenarioContext ctx)
    {
        await using var target = new BridgeTarget(configuration, BridgeTransport.Json);
        await target.StartAsync(ctx);
        await using var publisher = await target.CreatePublisherAsync(ctx.Stats, ctx.Token);
        // Rooms the last phase does not use (bench.r{rooms + i}), so its subscribers see only their own messages.
        var spare = rooms;
        async Task<double> PublishOnlyAsync(string phase, int spread)
        {
            ctx.Status = phase;
            var worker = target.Worker.CpuTime();
            var sw = Stopwatch.StartNew();
            for (var i = 0; i < messages; i++)
            {
                await publisher.PublishAsync(spare + (i % spread), LoadPayload.Create(Stopwatch.GetTimestamp(), i / spread, i % spread), ctx.Token);
            }

            await publisher.FlushAsync(ctx.Token);
            var rate = messages / sw.Elapsed.TotalSeconds;
            ctx.Report.Add(phase + ": worker CPU", $"{(target.Worker.CpuTime() - worker).TotalSeconds / sw.Elapsed.TotalSeconds * 100:N0} % of one core");
            spare += spread;
            return rate;
        }

        // Warm-up (JIT, connections, stream files), not reported.
        await PublishOnlyAsync("warm-up", rooms);
        var one = await PublishOnlyAsync("publish only, 1 room", 1);
        var many = await PublishOnlyAsync($"publish only, {rooms:N0} rooms", rooms);
        ctx.Metric("publish_1_room_per_s", $"JetStream publish + ack alone, 1 room, {messages:N0} messages (no subscriber)", one, "msg/s");
        ctx.Metric("publish_rooms_per_s", $"JetStream publish + ack alone, spread over {rooms:N0} rooms (no subscriber)", many, "msg/s");

        var connections = spec.Find<LoadSimulation.KeepConstant>()!.Connections;
        var subscribers = await ctx.ConnectAsync((i, ct) => target.SubscribeAsync([.. Enumerable.Range(0, rooms).Where(r => r % connections == i)], ctx.Stats, ct));
        try
        {
            var result = await ctx.InjectAsync(
                (n, ts) => publisher.PublishAsync((int)(n % rooms), LoadPayload.Create(ts, n / rooms, (int)(n % rooms)), ctx.Token),
                1,
                () => publisher.FlushAsync(ctx.Token));
            ctx.Metric("rooms_delivered_per_s", $"{rooms:N0} rooms × 1 subscriber: delivered/s (the peers benchmark's row)", result.DeliveredPerSecond, "msg/s");
            ctx.Metric("delivered_vs_publish_only", "that ÷ publish alone over the same rooms", result.DeliveredPerSecond / many);
        }
        finally
        {
            ctx.Phase = "teardown";
            await Task.WhenAll(subscribers.Select(s => s.DisposeAsync().AsTask()));
        }
    }
}
