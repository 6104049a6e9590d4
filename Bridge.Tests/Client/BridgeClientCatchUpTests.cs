using System.Collections.Concurrent;
using Bridge.Client;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Client;

/// <summary>
/// The .NET client needs no change to benefit from members catching up from the stream: a live member that falls
/// behind a burst gets it all with no client-side timeout firing and no reconnect (a resume's long replay:
/// <see cref="BridgeClientBacklogTests"/>).
/// </summary>
public sealed class BridgeClientCatchUpTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    // 3,000 messages of 8 KiB (24 MB): far more than the worker's send queue (Bursts.SmallSendQueue), the client's
    // room buffer (64 messages here) and what the sockets' buffers hold (a few MB each way on loopback) together.
    private const int Burst = 3000;

    private const int BodyBytes = 8192;

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_burst_to_an_application_that_reads_slowly_streams_as_a_catch_up_with_no_timeout_or_reconnect(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Bursts.SmallSendQueue);
        using var meters = new WorkerMeters(worker);
        var room = Names.Room("cu");
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = BridgeClientTests.NewClient(worker.WebSocketUrl, format, o => o.RoomBufferCapacity = 64);
        await client.ConnectAsync();
        client.StateChanged += (_, e) => states.Enqueue(e);
        var subscription = await client.JoinAsync(room);

        var seqs = await Bursts.PublishAsync(nats.Server, room, Burst, BodyBytes);
        // While the backlog streams, the application publishes (from another task: awaiting the ack without reading
        // the room would wait on frames queued behind it) and gets its ack while it reads on.
        var received = new List<ulong>();
        Task<Ack>? ack = null;
        using var cts = new CancellationTokenSource(Long);
        await foreach (var message in subscription.ReadAllAsync(cts.Token))
        {
            if (message.Type == Bursts.Type)
            {
                received.Add(message.Seq);
            }

            if (received.Count == Burst / 2 && ack is null)
            {
                ack = client.PublishAsync(room, "chat.message", new { text = "while catching up" }, cancellationToken: cts.Token);
            }

            if (received.Count == Burst)
            {
                break;
            }

            await Task.Delay(1, cts.Token);
        }

        Assert.Equal(seqs, received);
        Assert.NotNull(ack);
        Assert.True((await ack).Seq > seqs[^1]);
        Assert.True(meters.Total("bridge.catchups") >= 1, "the client never fell behind: the burst did not test a catch-up");
        Assert.True(states.IsEmpty, string.Join("; ", states.Select(e => $"{e.State} code={e.CloseCode} reason={e.Reason}")));
        Assert.Equal(ConnectionState.Open, client.State);
    }
}
