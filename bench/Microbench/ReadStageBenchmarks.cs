using System.Buffers;
using System.Diagnostics.Metrics;
using System.Text;
using BenchmarkDotNet.Attributes;
using Bridge.Worker.Core;
using Bridge.Worker.Nats;
using Bridge.Worker.Operations;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.Microbench;

/// <summary>
/// The read side of a replay, stage by stage, on one delivery of the replay benchmark's room exactly as nats-server
/// sends it to a cursor's consumer (<c>Bridge.LoadTests resume</c>: subject <c>rooms.bench.replay</c>, header block
/// <c>NATS/1.0\r\nBridge-Type: load.tick\r\n\r\n</c>, body <c>{"sent":0,"pad":"x…40"}</c>, reply subject
/// <c>$JS.ACK.ROOMS.&lt;22-character NUID&gt;.1.&lt;stream seq&gt;.&lt;consumer seq&gt;.&lt;ns&gt;.&lt;pending&gt;</c>):
/// what NATS.Net's read loop hands <c>ConsumerPulls.ReceiveInternalAsync</c>, and what each stage after it costs (ns and
/// bytes allocated per delivery). What NATS.Net's read loop itself costs is <see cref="ReadLoopBenchmarks"/>'s (a real
/// server).
/// </summary>
[MemoryDiagnoser]
public class ReadStageBenchmarks
{
    // A delivery of message 57,345 of a 100,000-message room, as captured from a replay's HMSG line.
    private const string Consumer = "Xk3hVQ0jR8mE2tYpL6wN9a";
    private const string Subject = "rooms.bench.replay";
    private const string Reply = "$JS.ACK.ROOMS." + Consumer + ".1.57345.57218.1764604823123456789.42655";

    private readonly ConsumerAckReplies _replies = new("ROOMS", Consumer);
    private readonly ReadOnlySequence<byte> _headers = new("NATS/1.0\r\nBridge-Type: load.tick\r\n\r\n"u8.ToArray());
    private readonly ReadOnlySequence<byte> _body = new("{\"sent\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"u8.ToArray());
    private readonly WakeBatchBuffer<(ulong, RoomMessage?)> _buffer = new(4096);
    private RoomMessageReader _reader = null!;
    private RoomMessage _message = null!;
    private HeaderBlock _block;
    private string _type = null!;
    private readonly HeaderBlockReader _headerReader = new(Encoding.ASCII);

    [GlobalSetup]
    public void Setup()
    {
        var meters = new MeterFactory();
        var metrics = new BridgeMetrics(meters, TimeProvider.System);
        _reader = new RoomMessageReader(new MessageFallbacks(metrics, NullLogger<MessageFallbacks>.Instance), TimeProvider.System);
        _block = HeaderBlock.Read(_headers, Encoding.ASCII);
        _type = _block.Type!;
        _message = _reader.Create("bench.replay", 57345, 0, 1764604823123, _block, _body);
    }

    /// <summary>The reply subject read for stream seq, consumer seq and time (<c>ConsumerAckReplies</c>).</summary>
    [Benchmark]
    public ulong AckSubject()
    {
        _replies.TryParse(Reply, out var seq, out var delivered, out var ts);
        return seq + delivered + (ulong)ts;
    }

    /// <summary>The header block read for the Bridge headers, the type string known from the last delivery.</summary>
    [Benchmark]
    public string? HeaderScan() => HeaderBlock.Read(_headers, Encoding.ASCII, _type).Type;

    /// <summary>The header block through a cursor's <c>HeaderBlockReader</c> (the same bytes as the last delivery's).</summary>
    [Benchmark]
    public string? HeaderScanRemembered() => _headerReader.Read(_headers).Type;

    /// <summary>The body copied, its JSON checked, the type check memo, the <c>RoomMessage</c> (RoomMessageReader.Create).</summary>
    [Benchmark]
    public object CreateMessage() => _reader.Create("bench.replay", 57345, 0, 1764604823123, _block, _body);

    /// <summary>Only the JSON check of <see cref="CreateMessage"/>, for its share.</summary>
    [Benchmark]
    public bool JsonCheck() => Bridge.Contracts.PayloadTranscoder.IsValidJson(_message.Payload);

    /// <summary>
    /// Everything done on the read loop for one delivery after NATS.Net hands it over: as <c>ConsumerPulls.Receive</c>
    /// and the cursor's <c>Read</c> (ack subject, header block, message), then the write into the reader's buffer and
    /// the reader taking it, 64 at a time as it is woken.
    /// </summary>
    [Benchmark(OperationsPerInvoke = 64)]
    public int DeliveryToReader()
    {
        var n = 0;
        for (var i = 0; i < 64; i++)
        {
            _replies.TryParse(Reply, out var seq, out _, out var ts);
            var block = _headerReader.Read(_headers);
            var message = _reader.Create(Subject, seq, 0, ts, block, _body);
            _buffer.TryWrite((seq, message), urgent: false);
        }

        while (_buffer.TryRead(out var item))
        {
            n += item.Item2 is null ? 0 : 1;
        }

        return n;
    }

    /// <summary>The reader's buffer alone: one write (a lock) and one read per delivery, taken 64 at a time.</summary>
    [Benchmark(OperationsPerInvoke = 64)]
    public int BufferWriteRead()
    {
        var n = 0;
        for (var i = 0; i < 64; i++)
        {
            _buffer.TryWrite((1, _message), urgent: false);
        }

        while (_buffer.TryRead(out var item))
        {
            n += (int)item.Item1;
        }

        return n;
    }

    private sealed class MeterFactory : IMeterFactory
    {
        public Meter Create(MeterOptions options) => new(options);

        public void Dispose()
        {
        }
    }
}
