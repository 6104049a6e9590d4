using Bridge.Contracts;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Integration;

/// <summary>
/// The send loops count room messages per batch (issue 14): a replay over WebSocket and SSE still counts every message
/// written exactly once, and no control frame; the delivery latency is recorded for live messages only, not for those
/// replayed (their age is no delivery latency: docs/operations.md).
/// </summary>
public sealed class SendLoopMetricsTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private const int Backlog = 2001;

    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [Fact]
    public async Task A_replay_over_websocket_and_sse_counts_every_room_message_written_exactly_once()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        using var meters = new WorkerMeters(worker);
        var room = Names.Room();
        var seqs = await Bursts.PublishAsync(nats.Server, room, Backlog, bodyBytes: 64);
        var since = seqs[0]; // resumes after the room's first message: Backlog - 1 replayed to each
        var expected = seqs.Skip(1).ToList();

        await using var ws = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await ws.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room, ["payload"] = new Dictionary<string, object?> { ["since"] = since } });
        Assert.Equal(expected, (await ws.CollectAsync(expected.Count, f => f.Type == Bursts.Type, Long)).Select(f => f.Seq));
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, room, lastEventId: since.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var events = await sse.CollectAsync(expected.Count, e => e.Event == Bursts.Type, Long);
        Assert.Equal(expected, events.Select(e => e.Json["seq"]!.GetValue<ulong>()));

        // Then live messages to both members, which are timed.
        const int Live = 5;
        var live = await Bursts.PublishAsync(nats.Server, room, Live, bodyBytes: 64);
        Assert.Equal(live, (await ws.CollectAsync(Live, f => f.Type == Bursts.Type, Long)).Select(f => f.Seq));
        Assert.Equal(live, (await sse.CollectAsync(Live, e => e.Event == Bursts.Type, Long)).Select(e => e.Json["seq"]!.GetValue<ulong>()));

        // Counted before each batch's flush, so by the time the clients have read everything; room.joined is not counted.
        var total = 2 * (expected.Count + Live);
        await Eventually.TrueAsync(() => meters.Total("bridge.messages.out") >= total, Long);
        Assert.Equal(total, meters.Total("bridge.messages.out"));
        Assert.Equal(2 * Live, meters.Count("bridge.delivery.latency"));
        Assert.True(meters.Total("bridge.sent") > 64.0 * total, "every counted frame's bytes are counted");
    }
}
