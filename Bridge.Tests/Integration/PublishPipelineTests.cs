using System.Diagnostics;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Connections;
using Bridge.Worker.Handlers;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;
using Bridge.Worker.Publishing;
using Bridge.Worker.Security;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Tests.Integration;

/// <summary>
/// A connection's publishes are pipelined: written to NATS in the order sent, acks awaited beside the receive loop,
/// at most <c>MaxPublishesInFlight</c> outstanding. Each test has its own nats-server, since one freezes it.
/// </summary>
public sealed class PublishPipelineTests : IAsyncLifetime
{
    private NatsServerProcess _nats = null!;

    public async Task InitializeAsync() => _nats = await NatsServerProcess.StartAsync();

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    [Fact]
    public async Task Publishes_sent_without_waiting_are_each_acked_once_and_stored_in_the_order_each_connection_sent_them()
    {
        const int perClient = 300;
        await using var worker = await WorkerHost.StartAsync(_nats);
        var room = Names.Room();
        await using var a = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var b = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);

        // Both connections publish to the same room at once, nobody waiting for an ack before the next.
        async Task<List<Frame>> PublishAllAsync(TestClient client, string prefix)
        {
            for (var i = 0; i < perClient; i++)
            {
                await client.PublishAsync(room, i, id: $"{prefix}{i}");
            }

            return await client.CollectAsync(perClient, f => f.Type is MessageTypes.Ack or MessageTypes.Error, TimeSpan.FromSeconds(60));
        }

        var answers = await Task.WhenAll(PublishAllAsync(a, "a"), PublishAllAsync(b, "b"));
        foreach (var (frames, prefix) in new[] { (answers[0], "a"), (answers[1], "b") })
        {
            Assert.All(frames, f => Assert.Equal(MessageTypes.Ack, f.Type));
            Assert.Equal(Enumerable.Range(0, perClient).Select(i => $"{prefix}{i}").ToHashSet(), frames.Select(f => f.Id!).ToHashSet());
            var seqById = frames.ToDictionary(f => f.Id!, f => f.Seq);
            var seqs = Enumerable.Range(0, perClient).Select(i => seqById[$"{prefix}{i}"]).ToList();
            Assert.Equal(seqs.Order(), seqs); // stored in the order sent
            Assert.All(frames, f => Assert.False(f.Payload!["duplicate"]!.GetValue<bool>()));
        }

        Assert.Equal(2 * perClient, answers.SelectMany(f => f).Select(f => f.Seq).Distinct().Count());
    }

    [Fact]
    public async Task A_retried_pipelined_publish_is_answered_with_the_original_seq_as_a_duplicate()
    {
        await using var worker = await WorkerHost.StartAsync(_nats);
        var room = Names.Room();
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        for (var i = 0; i < 20; i++)
        {
            await client.PublishAsync(room, i, id: $"m{i % 10}"); // m0..m9 twice, back to back
        }

        var acks = await client.CollectAsync(20, f => f.Type == MessageTypes.Ack);
        foreach (var group in acks.GroupBy(f => f.Id))
        {
            var pair = group.ToList();
            Assert.Equal(2, pair.Count);
            Assert.Equal(pair[0].Seq, pair[1].Seq);
            Assert.Equal([false, true], pair.Select(f => f.Payload!["duplicate"]!.GetValue<bool>()).Order());
        }
    }

    [Fact]
    public async Task With_the_stream_unresponsive_every_publish_gets_publish_failed_and_the_receive_loop_waits_at_the_in_flight_limit()
    {
        // MaxPublishesInFlight 2: two wait in the queue and one is being answered; the fourth publish is read only
        // once the first is answered. nats-server is frozen (SIGSTOP), so no ack comes and each fails at its timeout.
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:Connections:MaxPublishesInFlight", "2"), ("Bridge:Nats:PublishTimeout", "00:00:01"));
        var room = Names.Room();
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await FrozenThenRetryStoredAsync(client, room, "p0", async () =>
        {
            for (var i = 0; i < 6; i++)
            {
                await client.PublishAsync(room, i, id: $"p{i}");
            }

            // A frame answered at once (no type): its error can only come once the receive loop has read it.
            await client.SendAsync(new() { ["room"] = room, ["id"] = "marker" });
            var answers = await client.CollectAsync(7, f => f.Type == MessageTypes.Error, TimeSpan.FromSeconds(60));
            var order = answers.Select(f => f.Payload!["ref"]?.GetValue<string>()).ToList();
            Assert.All(answers.Where(f => f.Payload!["ref"]?.GetValue<string>() != "marker"), f => Assert.Equal(ErrorCodes.PublishFailed, f.ErrorCode));
            Assert.Equal(["marker", "p0", "p1", "p2", "p3", "p4", "p5"], order.Order(StringComparer.Ordinal));
            // p3, p4 and p5 each waited for a place, freed as p0, p1 and p2 were answered; the marker came after p5.
            var marker = order.IndexOf("marker");
            Assert.True(marker > order.IndexOf("p0") && marker > order.IndexOf("p1") && marker > order.IndexOf("p2"), string.Join(",", order));
        });
    }

    [Fact]
    public async Task With_the_server_frozen_and_the_write_buffer_full_every_publish_gets_publish_failed_within_its_timeout()
    {
        // 30 publishes of 500 KB to a frozen server: the first fill what the sockets hold and NATS.Net's write buffer,
        // the writes of the others wait for room. Each must still end at its PublishTimeout (1 s), not when NATS.Net's
        // write gives up: its CommandTimeout (5 s) for the write lock, and again for the flush.
        await using var worker = await WorkerHost.StartAsync(
            _nats, ("Bridge:Connections:MaxPublishesInFlight", "64"), ("Bridge:Nats:PublishTimeout", "00:00:01"),
            ("Bridge:Connections:MaxFrameBytes", "1048576"));
        var commandTimeout = worker.Get<NatsContext>().Connection.Opts.CommandTimeout;
        var room = Names.Room();
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        var big = new string('x', 500_000);
        await FrozenThenRetryStoredAsync(client, room, "b0", async () =>
        {
            for (var i = 0; i < 30; i++)
            {
                await client.PublishAsync(room, big, id: $"b{i}");
            }

            // Sent: every publish is read at once (64 may wait for their ack), so each is answered a PublishTimeout
            // from now, with slack for a loaded machine; a write that waited for room would take the CommandTimeout.
            var sent = Stopwatch.StartNew();
            var answers = await client.CollectAsync(30, f => f.Type is MessageTypes.Ack or MessageTypes.Error, TimeSpan.FromSeconds(60));
            var took = sent.Elapsed;
            Assert.All(answers, f => Assert.Equal(ErrorCodes.PublishFailed, f.ErrorCode));
            Assert.Equal(Enumerable.Range(0, 30).Select(i => $"b{i}"), answers.Select(f => f.Payload!["ref"]!.GetValue<string>()));
            Assert.True(took < commandTimeout - TimeSpan.FromSeconds(0.5), $"the last answer came {took} after the publishes were sent");
        });
    }

    [Fact]
    public async Task With_NATS_down_and_the_connection_reconnecting_a_publish_gets_publish_failed_within_its_timeout()
    {
        // While NATS.Net reconnects, its write waits for the reconnect however long: the publish must still end.
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:Nats:PublishTimeout", "00:00:01"));
        var connection = worker.Get<NatsContext>().Connection;
        var room = Names.Room();
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        _nats.Kill();
        var down = Stopwatch.StartNew();
        while (connection.ConnectionState == NatsConnectionState.Open)
        {
            Assert.True(down.Elapsed < TimeSpan.FromSeconds(30), "the worker did not notice NATS was gone");
            await Task.Delay(20);
        }

        await client.PublishAsync(room, 1, id: "r0");
        await client.PublishAsync(room, 2, id: "r1");
        var answers = await client.CollectAsync(2, f => f.Type is MessageTypes.Ack or MessageTypes.Error, TimeSpan.FromSeconds(30));
        Assert.Equal(["r0", "r1"], answers.Select(f => f.Payload!["ref"]!.GetValue<string>()));
        Assert.All(answers, f => Assert.Equal(ErrorCodes.PublishFailed, f.ErrorCode));
    }

    [Fact]
    public async Task A_pipelined_publish_the_stream_refuses_is_answered_publish_failed_and_the_publishes_around_it_are_acked()
    {
        await using var worker = await WorkerHost.StartAsync(_nats);
        // From now on the stream itself, not the worker's edge, refuses a message over 1,000 bytes: its ack carries an error.
        await using (var connection = new NatsConnection(new NatsOpts { Url = _nats.Url }))
        {
            var js = new NatsJSContext(connection);
            var stream = await js.GetStreamAsync("ROOMS");
            var config = stream.Info.Config;
            config.MaxMsgSize = 1000;
            await js.UpdateStreamAsync(config);
        }

        var room = Names.Room();
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.PublishAsync(room, "small", id: "before");
        await client.PublishAsync(room, new string('x', 2000), id: "refused");
        await client.PublishAsync(room, "small", id: "after");

        var answers = await client.CollectAsync(3, f => f.Type is MessageTypes.Ack or MessageTypes.Error, TimeSpan.FromSeconds(30));
        Assert.Equal(MessageTypes.Ack, answers.Single(f => f.Id == "before").Type);
        Assert.Equal(MessageTypes.Ack, answers.Single(f => f.Id == "after").Type);
        var refused = Assert.Single(answers, f => f.Type == MessageTypes.Error);
        Assert.Equal(ErrorCodes.PublishFailed, refused.ErrorCode);
        Assert.Equal("refused", refused.Payload!["ref"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_publish_whose_ack_fails_or_cannot_be_read_is_answered_publish_failed_and_the_publishes_after_it_are_answered_in_order()
    {
        // Acks NATS.Net does not give today, but nothing may stop a connection's answers: one that faulted with something
        // other than a NATS exception, and one with no response at all (reading it throws a NullReferenceException).
        await using var worker = await WorkerHost.StartAsync(_nats);
        var room = Names.Room();
        var session = Session();
        var pipeline = session.Publishes(worker.Get<PublishHandler>().Answer, NullLogger.Instance);
        await AddAsync(pipeline, Stored(worker, room, "before"), room, "before");
        await AddAsync(pipeline, new PendingPublish(ValueTask.FromException<PubAckResponse>(new InvalidOperationException("not NATS"))), room, "faulted");
        await AddAsync(pipeline, new PendingPublish(ValueTask.FromResult<PubAckResponse>(null!)), room, "unreadable");
        await AddAsync(pipeline, Stored(worker, room, "after"), room, "after");

        var answers = await AnswersAsync(session, 4);
        Assert.Equal(["ack before", "publish_failed faulted", "publish_failed unreadable", "ack after"], answers);
        // PublishService.Conclude itself turns the unreadable ack into publish_failed (it throws only when cancelled).
        Assert.Equal(PublishStatus.Failed, worker.Get<PublishService>().Conclude(new AwaitedAck(null, null), room, "c1", CancellationToken.None).Status);
    }

    [Fact]
    public async Task An_answer_that_throws_is_answered_publish_failed_and_the_pipeline_goes_on_answering_the_others_in_order()
    {
        await using var worker = await WorkerHost.StartAsync(_nats);
        var room = Names.Room();
        var session = Session();
        var handler = worker.Get<PublishHandler>();
        var pipeline = session.Publishes(
            (s, publish, awaited, closing) =>
            {
                if (publish.Id == "bad")
                {
                    throw new InvalidOperationException("an answer that fails");
                }

                handler.Answer(s, publish, awaited, closing);
            },
            NullLogger.Instance);
        foreach (var id in new[] { "p0", "bad", "p1", "p2" })
        {
            await AddAsync(pipeline, Stored(worker, room, id), room, id);
        }

        Assert.Equal(["ack p0", "publish_failed bad", "ack p1", "ack p2"], await AnswersAsync(session, 4));
    }

    /// <summary>
    /// Runs <paramref name="whileFrozen"/> with nats-server frozen (SIGSTOP), then wakes it: once the server answers
    /// again, a retry of the publish <paramref name="id"/> (the same id) is stored.
    /// </summary>
    private async Task FrozenThenRetryStoredAsync(TestClient client, string room, string id, Func<Task> whileFrozen)
    {
        _nats.Signal("STOP");
        try
        {
            await whileFrozen();
        }
        finally
        {
            _nats.Signal("CONT");
        }

        await client.PublishAsync(room, "again", id: id);
        var ack = await client.WaitForAsync(f => f.Type == MessageTypes.Ack && f.Id == id, TimeSpan.FromSeconds(30));
        Assert.True(ack.Seq > 0);
    }

    private static ClientSession Session() =>
        Sessions.New($"c-{Guid.NewGuid():N}");

    private static PendingPublish Stored(WorkerHost worker, string room, string id) =>
        worker.Get<RoomPublisher>().Start(room, "chat.message", "u", id, PayloadKind.Json, "1"u8.ToArray(), CancellationToken.None);

    private static async Task AddAsync(PublishPipeline pipeline, PendingPublish pending, string room, string id)
    {
        Assert.True(await pipeline.WaitForPlaceAsync(CancellationToken.None));
        await pipeline.AddAsync(new PublishInFlight(pending, room, id));
    }

    // The connection's answers in the order queued, each as "ack id" or "code ref".
    private static async Task<List<string>> AnswersAsync(ClientSession session, int count)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var answers = new List<string>();
        while (answers.Count < count)
        {
            var frame = new Frame { Json = JsonNode.Parse((await session.Queue.Reader.ReadAsync(timeout.Token)).Bytes)!.AsObject() };
            answers.Add(frame.Type == MessageTypes.Ack ? $"ack {frame.Id}" : $"{frame.ErrorCode} {frame.Payload!["ref"]}");
        }

        return answers;
    }
}
