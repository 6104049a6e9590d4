using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;

namespace Bridge.Tests.Tools;

/// <summary>
/// The toolkit's raw-mode clients (what the load harness counts with): when the caller's frame or event handler
/// throws, the client drops its connection and keeps the exception. Before, a throwing handler ended the read loop
/// but left the socket open: the worker then saw a subscriber that stopped reading, and the harness silently
/// stopped counting it (the 100,000-message burst's "load client stops reading").
/// </summary>
public sealed class TestingClientFailureTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task A_websocket_client_whose_frame_handler_throws_drops_its_connection_and_keeps_the_exception()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var tracker = worker.Get<ConnectionTracker>();
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, new TestClientOptions
        {
            Subprotocol = Subprotocols.MessagePack,
            OnFrame = (_, _) => throw new InvalidOperationException("counting failed"),
        });

        await client.Closed.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.IsType<InvalidOperationException>(client.FrameHandlerError);
        Assert.False(client.IsOpen);
        await Eventually.TrueAsync(() => tracker.Count == 0, TimeSpan.FromSeconds(15), "the worker still holds the connection of a client whose reader failed");
    }

    [Fact]
    public async Task An_sse_client_whose_event_handler_throws_closes_its_stream_and_keeps_the_exception()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var tracker = worker.Get<ConnectionTracker>();
        var room = Names.Room("toolkit");
        await using var client = await SseClient.ConnectAsync(worker.HttpUrl, new SseClientOptions
        {
            Rooms = room,
            OnEvent = (_, _) => throw new InvalidOperationException("counting failed"),
        });

        await Eventually.TrueAsync(() => client.EventHandlerError is not null, TimeSpan.FromSeconds(10), "the event handler was never called");
        Assert.IsType<InvalidOperationException>(client.EventHandlerError);
        await Eventually.TrueAsync(() => tracker.Count == 0, TimeSpan.FromSeconds(15), "the worker still holds the stream of a client whose reader failed");
    }
}
