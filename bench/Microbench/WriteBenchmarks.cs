using System.Buffers;
using System.IO.Pipelines;
using BenchmarkDotNet.Attributes;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Core;
using Bridge.Worker.Protocol;
using Bridge.Worker.Transports.Sse;
using Bridge.Worker.Transports.WebSockets;
using MessagePack;

namespace Bridge.Microbench;

/// <summary>
/// The write side of a replayed message (<c>Bridge.LoadTests resume</c>: type <c>load.tick</c> in <c>bench.replay</c>, a
/// stream seq and time, the 54-byte JSON payload, no id or from), stage by stage, per message: the frame's encoding (JSON,
/// MessagePack with the payload's transcoding), the send queue (a read's run in, the send loop's reads out), the batch
/// array with its WebSocket framing into the batching stream and its socket write, and the SSE event write.
/// </summary>
[MemoryDiagnoser]
public class WriteBenchmarks
{
    // What a replay hands the send side per run (RoomReader's run of at most 128).
    private const int Run = 128;

    private static readonly byte[] Payload = "{\"sent\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"u8.ToArray();

    private readonly string _type = "load.tick";
    private readonly string _room = "bench.replay";
    private RoomMessage _message = null!;
    private byte[] _json = null!;
    private byte[] _messagePack = null!;
    private OutboundFrame[] _frames = null!;
    private OutboundQueue _queue = null!;
    private EnvelopeBatch _jsonBatch = null!;
    private EnvelopeBatch _messagePackBatch = null!;
    private FrameBatchingStream _stream = null!;
    private Pipe _pipe = null!;
    private SseEventWriter _sse = null!;

    [GlobalSetup]
    public void Setup()
    {
        _message = Message(54_321);
        _json = JsonFrameCodec.Instance.EncodeMessage(_message);
        _messagePack = MessagePackFrameCodec.Instance.EncodeMessage(_message);
        _frames = new OutboundFrame[Run];
        for (var i = 0; i < Run; i++)
        {
            _frames[i] = new OutboundFrame(_json, _type, _room, (ulong)i + 1, 1_764_600_000_000, Replayed: true);
        }

        _queue = new OutboundQueue(1024, 4 << 20);
        _jsonBatch = new EnvelopeBatch(json: true, 32 * 1024);
        _messagePackBatch = new EnvelopeBatch(json: false, 32 * 1024);
        _stream = new FrameBatchingStream(Stream.Null);
        _pipe = new Pipe(new PipeOptions(pauseWriterThreshold: 0, useSynchronizationContext: false));
        _sse = new SseEventWriter(_pipe.Writer, [_room], new Dictionary<string, ulong>());
    }

    private RoomMessage Message(ulong seq) => new()
    {
        Room = _room,
        Type = _type,
        Seq = seq,
        Timestamp = 1_764_600_000_000 + (long)seq,
        PayloadKind = PayloadKind.Json,
        Payload = Payload,
        PayloadChecked = true,
    };

    /// <summary>The JSON frame (EncodePlain: straight into its array).</summary>
    [Benchmark]
    public byte[] JsonFrame() => JsonFrameCodec.Instance.EncodeMessage(_message);

    /// <summary>The MessagePack frame, the payload transcoded.</summary>
    [Benchmark]
    public byte[] MessagePackFrame() => MessagePackFrameCodec.Instance.EncodeMessage(_message);

    private readonly ArrayBufferWriter<byte> _buffer = new(1024);

    /// <summary>The payload's transcoding alone, into the thread's buffer (the frame's largest part).</summary>
    [Benchmark]
    public int TranscodingOnly()
    {
        _buffer.ResetWrittenCount();
        var writer = new MessagePackWriter(_buffer);
        PayloadTranscoder.WriteJsonAsMessagePack(_message.Payload, ref writer, stringsChecked: true);
        writer.Flush();
        return _buffer.WrittenCount;
    }

    /// <summary>A read's run of 128 frames into the send queue and out of it as the send loop takes them; per message.</summary>
    [Benchmark(OperationsPerInvoke = Run)]
    public int QueueRun()
    {
        var queued = _queue.TryEnqueueMessages(_frames);
        var reader = _queue.Reader;
        while (reader.TryRead(out var frame))
        {
            _queue.OnSent(frame);
        }

        return queued;
    }

    /// <summary>JSON envelopes into a 32 KiB batch array, framed as one WebSocket message into the batching stream and written; per message.</summary>
    [Benchmark(OperationsPerInvoke = Run * 2)]
    public void JsonBatchAndFraming() => Batch(_jsonBatch, _json, text: true);

    /// <summary>The same for MessagePack envelopes; per message.</summary>
    [Benchmark(OperationsPerInvoke = Run * 2)]
    public void MessagePackBatchAndFraming() => Batch(_messagePackBatch, _messagePack, text: false);

    /// <summary>A plain connection's frames (json): each framed as its own WebSocket message into the batching stream; per message.</summary>
    [Benchmark(OperationsPerInvoke = Run * 2)]
    public void JsonPlainFraming()
    {
        _stream.BeginBatch();
        for (var i = 0; i < Run * 2; i++)
        {
            _stream.TryHoldMessage(_json, text: true);
        }

        _stream.EndBatchAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
    }

    private void Batch(EnvelopeBatch batch, byte[] envelope, bool text)
    {
        _stream.BeginBatch();
        for (var i = 0; i < Run * 2; i++)
        {
            if (!batch.TryAdd(envelope))
            {
                _stream.TryHoldMessage(batch.Complete().Span, text);
                batch.Clear();
                batch.TryAdd(envelope);
            }
        }

        _stream.TryHoldMessage(batch.Complete().Span, text);
        batch.Clear();
        _stream.EndBatchAsync(CancellationToken.None).AsTask().GetAwaiter().GetResult();
    }

    /// <summary>SSE: each frame as an event into the response's writer, committed and flushed every 32 KB as the loop does; per message.</summary>
    [Benchmark(OperationsPerInvoke = Run * 2)]
    public void SseEvents()
    {
        for (var i = 0; i < Run * 2; i++)
        {
            _sse.Write(_frames[i & (Run - 1)]);
            if (_sse.Unflushed >= 32 * 1024)
            {
                Flush();
            }
        }

        Flush();
    }

    private void Flush()
    {
        _sse.Commit();
        _pipe.Writer.FlushAsync().AsTask().GetAwaiter().GetResult();
        var reader = _pipe.Reader;
        reader.TryRead(out var result);
        reader.AdvanceTo(result.Buffer.End);
    }
}
