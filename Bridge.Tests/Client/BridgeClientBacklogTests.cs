using System.Collections.Concurrent;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
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

    // The client's JoinRetry (a join refused unavailable or rate_limited, sent again after a backoff) and the worker's
    // "could not join" (a join that failed, answered unavailable).
    private const int ClientJoinRetry = 7007;
    private const int WorkerJoinFailed = 2101;

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_resume_of_20000_stored_messages_read_slowly_arrives_once_in_order_with_no_reconnect_while_an_ack_and_a_sync_wait_behind_it(BridgeFormat format)
    {
        var workerLogs = new CapturingLoggerProvider();
        // Retention above the backlog (the default keeps 10,000 messages per room).
        await using var worker = await WorkerHost.StartAsync(nats.Server, b => b.Logging.AddProvider(workerLogs), ("Bridge:Nats:MaxMessagesPerRoom", "50000"));
        var room = Names.Room("bl");
        var stored = await StoreAsync(room, Stored);

        var clientLogs = new CapturingLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(clientLogs).SetMinimumLevel(LogLevel.Debug));
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(worker.WebSocketUrl, format, o =>
        {
            // Short enough that the slow read below lasts several times as long: a timeout that counted it would fire.
            o.AckTimeout = TimeSpan.FromSeconds(2);
            o.KeepAliveInterval = TimeSpan.FromSeconds(2);
            o.RoomBufferCapacity = 256;
            o.LoggerFactory = loggers;
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
            Assert.Fail($"got {received.Count} of {Stored + 1} messages; states: {Describe(states)}; {Warnings(clientLogs, workerLogs)}");
        }

        var ack = await publish.WaitAsync(WaitLimit);
        Assert.Equal([.. stored, ack.Seq], received.Select(m => m.Seq)); // every message once, in order, the publish last
        Assert.Equal("after.backlog", received[^1].Type);
        Assert.True((await sync.WaitAsync(WaitLimit)).Seq >= stored[^1]);

        // One connection all along: no ack, request, keep-alive or join timeout fired while the backlog streamed.
        Assert.True(
            states.Select(s => s.State).SequenceEqual([ConnectionState.Connecting, ConnectionState.Open]),
            $"states: {Describe(states)}; {Warnings(clientLogs, workerLogs)}");
        Assert.Equal(connectionId, client.ConnectionId);

        await Eventually.TrueAsync(() => !joins.IsEmpty, WaitLimit, "room.joined after the replay");
        var joined = joins.First();
        Assert.False(joined.Truncated);
        // Whichever join answered, room.joined comes after the whole backlog stored before the join (docs/protocol.md §4:
        // the replayed messages come before it): its position is at the backlog's end, or at the publish made meanwhile.
        Assert.True(joined.Seq >= stored[^1] && joined.Seq <= ack.Seq, $"room.joined at {joined.Seq}; the backlog ends at {stored[^1]}; {Warnings(clientLogs, workerLogs)}");
        var retries = clientLogs.Events.Where(e => e.Id == ClientJoinRetry).ToList();
        if (retries.Count == 0)
        {
            // The replay reads up to the room's position when it has caught up: the publish made meanwhile may be part of it.
            Assert.True(joined.Replayed is >= Stored and <= Stored + 1, $"replayed {joined.Replayed}; {Warnings(clientLogs, workerLogs)}");
        }
        else
        {
            // A read of the stream failed part way through the replay (NATS slow under load): the worker answered the join
            // unavailable after some replayed messages, and the client joined again from the last one it received
            // (docs/protocol.md §4, room.join errors). That join's room.joined counts only what it replayed, after the
            // messages the first one had sent (the next test makes this happen).
            Assert.All(retries, e => Assert.Contains($"({ErrorCodes.Unavailable})", e.Message, StringComparison.Ordinal));
            Assert.Contains(workerLogs.Events, e => e.Id == WorkerJoinFailed);
            Assert.InRange(joined.Replayed, 0, received.Count(m => m.Seq <= joined.Seq));
        }

        Assert.Equal(ack.Seq, subscription.Position);
    }

    /// <summary>
    /// A resume answered <c>unavailable</c> part way through its replay, as a read of the stream that fails under load
    /// makes the worker answer (docs/protocol.md §4, room.join: "an unavailable can come after some replayed messages:
    /// retry with since = the last seq received"): here nats-server is frozen (SIGSTOP) while the replay waits for the
    /// application, so the worker's next read of the stream times out. The client joins again from the last message it
    /// received; the <c>room.joined</c> it raises is that join's, and counts only what that join replayed. Every message
    /// still arrives once, in order, on one connection.
    /// </summary>
    [Fact]
    public async Task A_resume_answered_unavailable_part_way_is_joined_again_from_the_last_message_received_and_its_room_joined_counts_only_the_rest()
    {
        const int count = 10_000;
        var workerLogs = new CapturingLoggerProvider();
        await using var worker = await WorkerHost.StartAsync(nats.Server, b => b.Logging.AddProvider(workerLogs), ("Bridge:Nats:MaxMessagesPerRoom", "50000"));
        var room = Names.Room("bl");
        // 4 KB each, 40 MB in all: far more than the worker's send queue (4 MB), the sockets and the room buffer hold, so
        // the replay cannot end while the application reads nothing.
        var stored = await StoreAsync(room, count, padding: 4096);

        var clientLogs = new CapturingLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(clientLogs).SetMinimumLevel(LogLevel.Debug));
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(worker.WebSocketUrl, BridgeFormat.MessagePack, o =>
        {
            o.RoomBufferCapacity = 256;
            o.LoggerFactory = loggers;
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();
        var connectionId = client.ConnectionId;

        var subscription = await client.JoinAsync(room, since: 0).WaitAsync(WaitLimit);
        var joins = new ConcurrentQueue<RoomJoinInfo>();
        subscription.Joined += (_, info) => joins.Enqueue(info);

        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        ulong resumedFrom;
        Task<List<ulong>> reading;
        nats.Server.Signal("STOP");
        try
        {
            // The application reads now, at full speed: the worker's next read of the stream finds nats-server frozen.
            reading = ReadSeqsAsync(subscription, count, limit.Token);
            await Eventually.TrueAsync(() => clientLogs.Events.Any(e => e.Id == ClientJoinRetry), TimeSpan.FromSeconds(60), "the join answered unavailable");
            // Nothing of the room comes after the unavailable until a join succeeds, and none can while the server is
            // frozen: the client's position now is the since its next join sends.
            resumedFrom = subscription.Position ?? 0;
        }
        finally
        {
            nats.Server.Signal("CONT");
        }

        var received = await reading;
        Assert.Equal(stored, received); // every message once, in order
        Assert.True(
            states.Select(s => s.State).SequenceEqual([ConnectionState.Connecting, ConnectionState.Open]),
            $"states: {Describe(states)}; {Warnings(clientLogs, workerLogs)}");
        Assert.Equal(connectionId, client.ConnectionId);
        Assert.Contains(workerLogs.Events, e => e.Id == WorkerJoinFailed);

        // Part way: the first join replayed at least the room buffer's worth (JoinAsync returned), and not all of it.
        Assert.InRange(resumedFrom, stored[255], stored[^2]);
        await Eventually.TrueAsync(() => !joins.IsEmpty, WaitLimit, "room.joined after the replay");
        var joined = joins.First();
        Assert.False(joined.Truncated);
        Assert.Equal(stored[^1], joined.Seq);
        Assert.Equal(stored.Count(s => s > resumedFrom), joined.Replayed);
        Assert.Equal(stored[^1], subscription.Position);
    }

    /// <summary>
    /// The client's keep-alive and a slow application. The client reads its socket only as fast as the application takes
    /// messages, so one batch message of the worker (up to 32 KB: hundreds of envelopes) that the application takes longer
    /// than <see cref="BridgeClientOptions.KeepAliveInterval"/> to read leaves the socket unread that long. The client's
    /// keep-alive used to be ClientWebSocket's ping with a pong deadline (KeepAliveTimeout, the same interval), which ran
    /// out while the pong waited behind the backlog the application had not read yet: the socket was aborted and the
    /// client reconnected, again and again (every message still arrived once, in order, by the resumes). That was the CI
    /// flake of the first test (2 s, and an application slowed by a loaded machine: a reconnect part way, whose resume's
    /// room.joined counts only the rest), here without load: 100 messages a second and a 1 s interval. It failed in both
    /// formats then. The keep-alive now counts only the time the client waits on its socket (bridge.ping, Watchdog).
    /// </summary>
    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_backlog_read_at_100_messages_a_second_keeps_its_one_connection_under_a_1_s_keep_alive(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("ka");
        var stored = await StoreAsync(room, 5000);
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(worker.WebSocketUrl, format, o =>
        {
            o.KeepAliveInterval = TimeSpan.FromSeconds(1);
            o.RoomBufferCapacity = 256;
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();
        var subscription = await client.JoinAsync(room, since: 0).WaitAsync(WaitLimit);

        var received = new List<ulong>(stored.Count);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await foreach (var message in subscription.ReadAllAsync(limit.Token))
        {
            received.Add(message.Seq);
            if (received.Count <= 1500)
            {
                await Task.Delay(10); // 100 messages a second for 15 s: a batch message takes seconds to read
            }

            if (received.Count == stored.Count)
            {
                break;
            }
        }

        Assert.Equal(stored, received);
        Assert.True(states.Select(s => s.State).SequenceEqual([ConnectionState.Connecting, ConnectionState.Open]), $"states: {Describe(states)}");
    }

    /// <summary>Reads <paramref name="count"/> messages of <paramref name="subscription"/> at full speed, returning their seqs.</summary>
    private static async Task<List<ulong>> ReadSeqsAsync(RoomSubscription subscription, int count, CancellationToken cancellationToken)
    {
        var seqs = new List<ulong>(count);
        await foreach (var message in subscription.ReadAllAsync(cancellationToken))
        {
            seqs.Add(message.Seq);
            if (seqs.Count == count)
            {
                break;
            }
        }

        return seqs;
    }

    private static string Describe(IEnumerable<ConnectionStateChangedEventArgs> states) =>
        string.Join(", ", states.Select(s => $"{s.State} {s.Reason}"));

    /// <summary>The client's and the worker's warnings and errors, for a failure's message.</summary>
    private static string Warnings(CapturingLoggerProvider client, CapturingLoggerProvider worker) =>
        $"client: [{string.Join(" | ", client.Events.Where(e => e.Level >= LogLevel.Warning).Select(e => e.Message))}]; " +
        $"worker: [{string.Join(" | ", worker.Events.Where(e => e.Level >= LogLevel.Warning).Select(e => e.Message))}]";

    /// <summary>
    /// Stores <paramref name="count"/> messages in the room through JetStream (a backend), each with <paramref name="padding"/>
    /// bytes of text besides its number, and returns their seqs in order.
    /// </summary>
    private async Task<List<ulong>> StoreAsync(string room, int count, int padding = 0)
    {
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var pad = padding > 0 ? $",\"pad\":\"{new string('x', padding)}\"" : "";
        var seqs = new List<ulong>(count);
        for (var batch = 0; batch < count; batch += 1000)
        {
            var acks = await Task.WhenAll(Enumerable.Range(batch, 1000).Select(i =>
                js.PublishAsync($"rooms.{room}", System.Text.Encoding.UTF8.GetBytes($"{{\"n\":{i}{pad}}}"),
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
