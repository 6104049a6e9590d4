using BenchmarkDotNet.Attributes;
using Bridge.Contracts;
using MessagePack;

namespace Bridge.Microbench;

/// <summary>
/// The payload of the replay benchmark's messages (<c>Bridge.LoadTests resume</c>: <c>{"sent":0,"pad":"x…"}</c>, 54
/// bytes) through the checks and the transcoding every replayed message pays: ns and bytes allocated per message.
/// </summary>
[MemoryDiagnoser]
public class PayloadBenchmarks
{
    private readonly ReadOnlyMemory<byte> _json = "{\"sent\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"u8.ToArray();
    private readonly System.Buffers.ArrayBufferWriter<byte> _buffer = new(256);

    /// <summary>The check a stored JSON payload gets where it enters the worker.</summary>
    [Benchmark]
    public bool CheckJson() => PayloadTranscoder.IsValidJson(_json);

    /// <summary>The JSON payload written as MessagePack for a MessagePack member.</summary>
    [Benchmark]
    public int JsonAsMessagePack()
    {
        _buffer.ResetWrittenCount();
        var writer = new MessagePackWriter(_buffer);
        PayloadTranscoder.WriteJsonAsMessagePack(_json, ref writer);
        writer.Flush();
        return _buffer.WrittenCount;
    }
}
