using System.Net.WebSockets;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Connections;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Bridge.Worker.Transports.WebSockets;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Integration;

/// <summary>
/// The batch subprotocols (docs/protocol.md §1): every server message is an array of one or more envelopes, exactly the
/// frames a plain connection gets, in order; at most 32 KB of them per message, a larger one alone; client frames and
/// the plain subprotocols unchanged.
/// </summary>
public sealed class BatchSubprotocolTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IAsyncLifetime
{
    // The worker's FlushEvery: a batch message holds at most this many bytes of envelopes (a larger one alone).
    private const int MaxBatchBytes = 32 * 1024;

    private WorkerHost _worker = null!;

    public async Task InitializeAsync() => _worker = await WorkerHost.StartAsync(nats.Server);

    public async Task DisposeAsync() => await _worker.DisposeAsync();

    [Theory]
    [InlineData(new[] { Subprotocols.JsonBatch, Subprotocols.Json }, Subprotocols.JsonBatch)]
    [InlineData(new[] { Subprotocols.Json, Subprotocols.JsonBatch }, Subprotocols.Json)]
    [InlineData(new[] { Subprotocols.MessagePackBatch, Subprotocols.MessagePack }, Subprotocols.MessagePackBatch)]
    [InlineData(new[] { Subprotocols.MessagePack, Subprotocols.MessagePackBatch }, Subprotocols.MessagePack)]
    [InlineData(new[] { "bridge.v2.json", Subprotocols.JsonBatch }, Subprotocols.JsonBatch)]
    [InlineData(new[] { Subprotocols.Json }, Subprotocols.Json)]
    [InlineData(new[] { Subprotocols.MessagePack }, Subprotocols.MessagePack)]
    public async Task The_first_offered_subprotocol_the_worker_speaks_is_chosen_and_only_a_batch_one_sends_arrays(string[] offered, string chosen)
    {
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, new TestClientOptions
        {
            Subprotocol = null,
            Configure = o => Array.ForEach(offered, o.AddSubProtocol),
        });
        Assert.Equal(chosen, client.Socket.SubProtocol);

        var welcome = await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        var batched = chosen is Subprotocols.JsonBatch or Subprotocols.MessagePackBatch;
        // A plain message is the envelope itself; a batch one is an array around it (here alone: '[' ... ']', or a fixarray of 1).
        var expected = welcome.Raw.Length + (!batched ? 0 : chosen == Subprotocols.JsonBatch ? 2 : 1);
        Assert.Equal(expected, welcome.MessageBytes);

        // Client frames are as in the base format: a join is answered.
        var room = Names.Room();
        await client.JoinAndWaitAsync(room);
    }

    [Theory]
    [InlineData(Subprotocols.Json, Subprotocols.JsonBatch)]
    [InlineData(Subprotocols.MessagePack, Subprotocols.MessagePackBatch)]
    public async Task A_replay_arrives_in_few_arrays_holding_byte_for_byte_the_frames_a_plain_connection_gets_in_order_each_seq_once(
        string plainProtocol, string batchProtocol)
    {
        const int Stored = 2000;
        var room = Names.Room("bt");
        // Strings holding braces, brackets, commas, quotes and backslashes: an array is split by its structure, not its bytes.
        await StoreAsync(room, Enumerable.Range(0, Stored).Select(i => $$"""{"n":{{i}},"text":"}{[],\"\\ {{new string('x', 60)}}"}"""));

        await using var plain = await TestClient.ConnectAsync(_worker.WebSocketUrl, plainProtocol);
        await using var batch = await TestClient.ConnectAsync(_worker.WebSocketUrl, batchProtocol);
        Assert.Equal(batchProtocol, batch.Socket.SubProtocol);
        var expected = await ReplayAsync(plain, room, Stored);
        var got = await ReplayAsync(batch, room, Stored);

        // The same envelopes, byte for byte (MessagePack too: the same maps, so the same values), in order.
        Assert.Equal(expected.Select(f => Convert.ToHexString(f.Raw)), got.Select(f => Convert.ToHexString(f.Raw)));
        Assert.Equal(Enumerable.Range(0, Stored).Select(i => (ulong)i + 1), got.Select(f => f.Seq - got[0].Seq + 1));
        Assert.Equal(Stored, got.Select(f => f.Seq).Distinct().Count());

        // Envelopes share messages (how many depends on how far the replay outran the send loop: not asserted, a loaded
        // machine may keep up more often), never past 32 KB; a plain connection got one message per frame.
        var messages = got.GroupBy(f => f.Message).ToList();
        Assert.Contains(messages, m => m.Count() > 1);
        Assert.All(messages, m => Assert.InRange(m.First().MessageBytes, 1, MaxBatchBytes));
        Assert.Equal(Stored, expected.Select(f => f.Message).Distinct().Count());
    }

    [Theory]
    [InlineData(Subprotocols.JsonBatch)]
    [InlineData(Subprotocols.MessagePackBatch)]
    public async Task An_envelope_larger_than_a_batch_goes_alone_as_a_one_element_array_between_its_neighbours(string protocol)
    {
        var room = Names.Room("bl");
        var big = $"{{\"big\":\"{new string('b', 40_000)}\"}}";
        await StoreAsync(room, [.. Enumerable.Range(0, 50).Select(i => $"{{\"n\":{i}}}"), big, .. Enumerable.Range(50, 50).Select(i => $"{{\"n\":{i}}}")]);

        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, protocol);
        var got = await ReplayAsync(client, room, 101);

        var large = got[50];
        Assert.True(large.Raw.Length > MaxBatchBytes);
        Assert.Single(got, f => f.Message == large.Message);
        Assert.Equal(large.Raw.Length + (protocol == Subprotocols.JsonBatch ? 2 : 1), large.MessageBytes);
        Assert.Equal(Enumerable.Range(0, 101), got.Select(f => (int)(f.Seq - got[0].Seq)));
        // Its neighbours share messages with each other (read together while the socket was free), not with it.
        Assert.Contains(got.Where(f => f.Message != large.Message).GroupBy(f => f.Message), m => m.Count() > 1);
    }

    [Theory]
    [InlineData(Subprotocols.JsonBatch)]
    [InlineData(Subprotocols.MessagePackBatch)]
    public async Task Bad_input_is_answered_with_an_error_envelope_in_an_array_and_the_connection_stays(string protocol)
    {
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, protocol);
        await client.FirstFrame;

        await client.SendRawAsync("{"u8.ToArray());
        var error = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal(ErrorCodes.BadFrame, error.ErrorCode);

        // An array is no client frame: client frames stay as in the base format.
        await client.SendRawAsync(protocol == Subprotocols.JsonBatch ? """[{"type":"room.join","room":"a"}]"""u8.ToArray() : [0x91, 0x80]);
        Assert.Equal(ErrorCodes.BadFrame, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);

        await client.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = "a..b", ["id"] = "j1" });
        var invalid = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal((ErrorCodes.InvalidRoom, "j1"), (invalid.ErrorCode, invalid.Payload!["ref"]!.GetValue<string>()));
        await client.JoinAndWaitAsync(Names.Room());
        Assert.True(client.IsOpen);
    }

    [Theory]
    [InlineData(BridgeFormat.Json, true)]
    [InlineData(BridgeFormat.MessagePack, true)]
    [InlineData(BridgeFormat.Json, false)]
    public async Task The_dotnet_client_offers_the_batch_subprotocol_and_reads_a_replay_once_in_order(BridgeFormat format, bool batches)
    {
        const int Stored = 3000;
        var room = Names.Room("bc");
        var seqs = await StoreAsync(room, Enumerable.Range(0, Stored).Select(i => $"{{\"n\":{i}}}"));
        using var meters = new WorkerMeters(_worker);

        await using var client = NewClient(_worker.WebSocketUrl, format, o => o.ReceiveBatches = batches);
        await client.ConnectAsync().WaitAsync(WaitLimit);
        var subscription = await client.JoinAsync(room, since: 0).WaitAsync(WaitLimit);
        // Its ack queues on the worker behind the replay the application has not read yet.
        var publish = client.PublishAsync(room, "after.replay", new { n = Stored });
        var received = await ReadAsync(subscription, Stored + 1);
        var ack = await publish.WaitAsync(WaitLimit);

        Assert.Equal([.. seqs, ack.Seq], received.Select(m => m.Seq));
        Assert.Equal(Enumerable.Range(0, Stored), received.Take(Stored).Select(m => m.Payload!.Value.GetProperty("n").GetInt32()));
        var arrays = meters.Total("bridge.ws.array_messages");
        var envelopes = meters.Total("bridge.ws.array_envelopes");
        if (batches)
        {
            Assert.InRange(envelopes, Stored + 1, double.MaxValue);
            // At least one array held several envelopes (how many: timing, not asserted).
            Assert.InRange(arrays, 1, envelopes - 1);
        }
        else
        {
            Assert.Equal((0, 0), (arrays, envelopes));
        }
    }

    [Fact]
    public async Task An_arrays_frames_count_as_sent_only_once_it_is_written_so_a_blocked_direct_write_is_a_stall()
    {
        // No FrameBatchingStream (an HTTP/2 WebSocket): the array goes straight to the socket, whose write blocks (a
        // client that stops reading). Its frames are still waiting: the queue counts them and the stall check sees it.
        var stream = new BlockedStream();
        using var socket = WebSocket.CreateFromStream(stream, new WebSocketCreationOptions { IsServer = true, SubProtocol = Subprotocols.JsonBatch });
        var session = Sessions.New("m3", new OutboundQueue(64, 1 << 20));
        for (var i = 0; i < 10; i++)
        {
            var bytes = System.Text.Encoding.UTF8.GetBytes($$"""{"type":"chat.message","room":"r","seq":{{i + 1}},"payload":"{{new string('x', 500)}}"}""");
            Assert.True(session.Queue.TryEnqueue(new OutboundFrame(bytes, "chat.message", "r", (ulong)i + 1, Timestamp: 1)));
        }

        var connection = new WebSocketConnection(
            socket, batching: null, session, batched: true, _worker.Get<Bridge.Worker.Handlers.FrameDispatcher>(), _worker.Get<IOptions<ConnectionOptions>>().Value,
            _worker.Get<BridgeMetrics>(), TimeProvider.System, NullLogger<WebSocketConnection>.Instance, CancellationToken.None);
        using var aborted = new CancellationTokenSource();
        var running = connection.RunAsync(aborted.Token);
        try
        {
            await stream.WriteStarted.WaitAsync(WaitLimit);
            await Task.Delay(100);
            Assert.Equal(10, session.Queue.Count);
            var now = TimeProvider.System.GetTimestamp();
            session.Queue.IsStalled(now, TimeSpan.Zero, TimeProvider.System);
            Assert.True(session.Queue.IsStalled(now, TimeSpan.Zero, TimeProvider.System), "a blocked array write is no stall");
        }
        finally
        {
            await aborted.CancelAsync();
            stream.Dispose();
            try
            {
                await running.WaitAsync(WaitLimit);
            }
            catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException or IOException)
            {
            }
        }
    }

    /// <summary>A socket stream whose writes never end (a peer that stopped reading) and that has nothing to read.</summary>
    private sealed class BlockedStream : Stream
    {
        private readonly TaskCompletionSource _writeStarted = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task WriteStarted => _writeStarted.Task;

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            _writeStarted.TrySetResult();
            await Task.Delay(Timeout.Infinite, cancellationToken);
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await Task.Delay(Timeout.Infinite, cancellationToken);
            return 0;
        }

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }

    private static async Task<List<Frame>> ReplayAsync(TestClient client, string room, int count)
    {
        await client.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["room"] = room,
            ["payload"] = new Dictionary<string, object?> { ["since"] = 0 },
        });
        var frames = await client.CollectAsync(count, f => f.Type == "chat.message", TimeSpan.FromSeconds(30));
        await client.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);
        return frames;
    }

    /// <summary>Stores JSON payloads in the room through JetStream (a backend), one at a time, and returns their seqs.</summary>
    private async Task<List<ulong>> StoreAsync(string room, IEnumerable<string> payloads)
    {
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var seqs = new List<ulong>();
        foreach (var payload in payloads)
        {
            var ack = await js.PublishAsync($"rooms.{room}", System.Text.Encoding.UTF8.GetBytes(payload),
                headers: new NatsHeaders { [NatsSubjects.TypeHeader] = "chat.message", [NatsSubjects.ContentTypeHeader] = NatsSubjects.JsonContentType });
            ack.EnsureSuccess();
            seqs.Add(ack.Seq);
        }

        return seqs;
    }
}
