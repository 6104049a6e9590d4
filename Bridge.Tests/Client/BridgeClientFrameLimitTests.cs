using Bridge.Client;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>
/// Publishes stay within the worker's frame limit when its <c>welcome</c> announces a smaller <c>maxFrameBytes</c>
/// than the client's option (docs/protocol.md §4, §12): a larger one fails <c>frame_too_big</c> and is never sent,
/// so the worker never closes the connection with 1009. A real worker (16 KiB frames) and nats-server, with a
/// <see cref="FrameRelay"/> in between that counts the connections.
/// </summary>
public sealed class BridgeClientFrameLimitTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private const int WorkerMaxFrameBytes = 16 * 1024;

    // 32 KiB: over the worker's limit, within the client's own (64 KiB by default).
    private static readonly object BigPayload = new { text = new string('x', 32 * 1024) };

    [Fact]
    public async Task A_publish_over_the_workers_smaller_frame_limit_fails_frame_too_big_without_closing_the_connection_and_the_next_publish_is_delivered()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxFrameBytes", $"{WorkerMaxFrameBytes}"));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json);
        await client.ConnectAsync();
        var room = Names.Room("fl");
        var subscription = await client.JoinAsync(room);

        var error = await Assert.ThrowsAsync<BridgeException>(() => client.PublishAsync(room, "t.big", BigPayload).WaitAsync(WaitLimit));
        var ack = await client.PublishAsync(room, "t.small", new { n = 1 }).WaitAsync(WaitLimit);

        Assert.Equal("frame_too_big", error.Code);
        Assert.Contains($"{WorkerMaxFrameBytes}", error.Message);
        Assert.Equal(ack.Seq, Assert.Single(await ReadAsync(subscription, 1)).Seq);
        Assert.DoesNotContain(relay.Sent(1), f => f.GetProperty("type").GetString() == "t.big");
        Assert.Equal(1, relay.Connections); // no 1009 close, no reconnect
        Assert.Equal(ConnectionState.Open, client.State);
    }

    [Fact]
    public async Task A_publish_queued_before_the_welcome_and_over_the_workers_frame_limit_fails_when_it_is_due_and_the_publish_behind_it_is_delivered()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxFrameBytes", $"{WorkerMaxFrameBytes}"));
        await using var relay = await FrameRelay.StartAsync(worker.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.MessagePack);
        var room = Names.Room("fq");

        // Made before the connection: the client's own 64 KiB is all it knows, so both are queued.
        var joining = client.JoinAsync(room);
        var big = client.PublishAsync(room, "t.big", BigPayload);
        var small = client.PublishAsync(room, "t.small", new { n = 1 });
        await client.ConnectAsync();
        var subscription = await joining.WaitAsync(WaitLimit);

        var error = await Assert.ThrowsAsync<BridgeException>(() => big.WaitAsync(WaitLimit));
        var ack = await small.WaitAsync(WaitLimit);

        Assert.Equal("frame_too_big", error.Code);
        Assert.Equal(ack.Seq, Assert.Single(await ReadAsync(subscription, 1)).Seq);
        Assert.Equal(1, relay.Connections);
        Assert.Equal(ConnectionState.Open, client.State);
        Assert.Equal(0, client.PendingPublishes);
    }

    [Fact]
    public async Task A_publish_over_the_last_workers_frame_limit_made_while_reconnecting_is_queued_and_goes_out_to_a_next_worker_that_allows_it()
    {
        await using var small = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxFrameBytes", $"{WorkerMaxFrameBytes}"));
        await using var large = await WorkerHost.StartAsync(nats.Server); // the default 64 KiB
        await using var relay = await FrameRelay.StartAsync(small.WebSocketUrl);
        await using var client = NewClient(relay.Url, BridgeFormat.Json);
        await client.ConnectAsync();
        var room = Names.Room("fr");
        var subscription = await client.JoinAsync(room);
        relay.Refusing = true;
        relay.Drop();
        await Eventually.TrueAsync(() => client.State == ConnectionState.Reconnecting, WaitLimit);

        // Over the last worker's 16 KiB, within the client's 64 KiB: the next worker's welcome decides.
        var big = client.PublishAsync(room, "t.big", BigPayload);
        Assert.False(big.IsCompleted, big.Exception?.InnerException?.Message);
        Assert.Equal(1, client.PendingPublishes);
        relay.Worker = large.WebSocketUrl;
        relay.Refusing = false;

        var ack = await big.WaitAsync(WaitLimit);
        Assert.Equal(ack.Seq, Assert.Single(await ReadAsync(subscription, 1)).Seq);
        Assert.Equal(2, relay.Connections);
    }
}
