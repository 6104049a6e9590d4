using System.Collections.Concurrent;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>
/// The .NET client reading a long backlog at the application's pace from a real worker (issue 13): the room buffer
/// holds the socket back instead of growing or dropping, and no client-side timeout fires while frames arrive.
/// </summary>
public sealed class BridgeClientBacklogTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private const int Stored = 20_000;

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_resume_of_20000_stored_messages_read_slowly_arrives_once_in_order_with_no_reconnect_while_an_ack_and_a_sync_wait_behind_it(BridgeFormat format)
    {
        // Retention above the backlog (the default keeps 10,000 messages per room).
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Nats:MaxMessagesPerRoom", "50000"));
        var room = Names.Room("bl");
        var stored = await StoreAsync(room, Stored);

        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(worker.WebSocketUrl, format, o =>
        {
            // Short enough that the slow read below lasts several times as long: a timeout that counted it would fire.
            o.AckTimeout = TimeSpan.FromSeconds(2);
            o.KeepAliveInterval = TimeSpan.FromSeconds(2);
            o.RoomBufferCapacity = 256;
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();
        var connectionId = client.ConnectionId;

        // The replay (20,000) is far larger than the room buffer: JoinAsync returns once the buffer is full.
        var subscription = await client.JoinAsync(room, since: 0).WaitAsync(WaitLimit);
        var joins = new ConcurrentQueue<RoomJoinInfo>();
        subscription.Joined += (_, info) => joins.Enqueue(info);

        // Their answers queue on the worker behind the replay the application has not read yet.
        var publish = client.PublishAsync(room, "after.backlog", new { n = Stored });
        var sync = client.SyncAsync(room);

        var received = new List<BridgeMessage>(Stored + 1);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        try
        {
            await foreach (var message in subscription.ReadAllAsync(limit.Token))
            {
                received.Add(message);
                if (received.Count <= 4000 && received.Count % 20 == 0)
                {
                    await Task.Delay(40); // a slow application: 8 s or more for the first 4,000 messages, then at full speed
                }

                if (received.Count == Stored + 1)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"got {received.Count} of {Stored + 1} messages; states: {string.Join(", ", states.Select(s => $"{s.State} {s.Reason}"))}");
        }

        var ack = await publish.WaitAsync(WaitLimit);
        Assert.Equal([.. stored, ack.Seq], received.Select(m => m.Seq)); // every message once, in order, the publish last
        Assert.Equal("after.backlog", received[^1].Type);
        Assert.True((await sync.WaitAsync(WaitLimit)).Seq >= stored[^1]);
        await Eventually.TrueAsync(() => !joins.IsEmpty, WaitLimit, "room.joined after the replay");
        // The replay reads up to the room's position when it has caught up: the publish made meanwhile may be part of it.
        Assert.InRange(joins.First().Replayed, Stored, Stored + 1);
        Assert.False(joins.First().Truncated);
        Assert.Equal(ack.Seq, subscription.Position);

        // One connection all along: no ack, request, keep-alive or join timeout fired while the backlog streamed.
        Assert.Equal([ConnectionState.Connecting, ConnectionState.Open], states.Select(s => s.State));
        Assert.Equal(connectionId, client.ConnectionId);
    }

    /// <summary>Stores <paramref name="count"/> messages in the room through JetStream (a backend), and returns their seqs in order.</summary>
    private async Task<List<ulong>> StoreAsync(string room, int count)
    {
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var seqs = new List<ulong>(count);
        for (var batch = 0; batch < count; batch += 1000)
        {
            var acks = await Task.WhenAll(Enumerable.Range(batch, 1000).Select(i =>
                js.PublishAsync($"rooms.{room}", System.Text.Encoding.UTF8.GetBytes($"{{\"n\":{i}}}"),
                    headers: new NatsHeaders { [NatsSubjects.TypeHeader] = "chat.message", [NatsSubjects.ContentTypeHeader] = NatsSubjects.JsonContentType }).AsTask()));
            foreach (var ack in acks)
            {
                ack.EnsureSuccess();
                seqs.Add(ack.Seq);
            }
        }

        seqs.Sort();
        return seqs;
    }
}
