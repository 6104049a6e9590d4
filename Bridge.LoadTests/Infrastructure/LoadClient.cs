using System.Buffers;
using System.Buffers.Text;
using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.LoadTests.Harness;
using HdrHistogram;
using MessagePack;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// The load harness's view of a <see cref="TestClient"/> in raw mode, kept cheap on purpose (the load generator
/// shares the machine with the worker): JSON frames are not fully parsed, only scanned for the fields it needs;
/// MessagePack frames are read key by key. Counts <c>room.joined</c> and <c>load.*</c> messages, hands the latter to
/// a <see cref="DeliveryTracker"/> and/or records latency into a histogram.
/// </summary>
internal sealed class LoadClient : IAsyncDisposable
{
    private static readonly byte[] TypeMarker = "\"type\":\""u8.ToArray();
    private static readonly byte[] SentMarker = "\"sent\":"u8.ToArray();
    private static readonly byte[] SeqMarker = "\"seq\":"u8.ToArray();

    private readonly LoadClientOptions _options;
    private readonly List<ulong>? _seqs;
    private TestClient _client = null!;
    private long _messages;
    private long _joined;
    private readonly TaskCompletionSource<long> _firstJoined = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private long _bytes;

    private LoadClient(LoadClientOptions options)
    {
        _options = options;
        _seqs = options.TrackSeqs ? [] : null;
    }

    public long Messages => Interlocked.Read(ref _messages);

    /// <summary>Completes when the first frame (the worker's <c>welcome</c>) arrived; faults if the connection ended first.</summary>
    public Task FirstFrame => _client.FirstFrame;

    public long Joined => Interlocked.Read(ref _joined);

    /// <summary>
    /// Completes with the <see cref="System.Diagnostics.Stopwatch"/> timestamp at which the first <c>room.joined</c> was
    /// read (in the frame handler, so a waiter's wake-up is not counted); canceled if the connection ended before it.
    /// </summary>
    public Task<long> FirstJoined => _firstJoined.Task;

    /// <summary>Bytes of every frame received (WebSocket payloads, without framing; on a batch subprotocol, the envelopes' bytes without their arrays).</summary>
    public long Bytes => Interlocked.Read(ref _bytes);

    /// <summary>The close code the server sent, if it closed the connection.</summary>
    public int? CloseStatus => _client.CloseStatus;

    public bool IsOpen => _client.IsOpen;

    /// <summary>What counting a frame threw, if it did (the connection was then aborted): a harness bug, reported as an error.</summary>
    public Exception? FrameHandlerError => _client.FrameHandlerError;

    public static Task<LoadClient> ConnectAsync(Uri url, HistogramBase? latency, CancellationToken cancellationToken, bool trackSeqs = false) =>
        ConnectAsync(url, new LoadClientOptions { Latency = latency, TrackSeqs = trackSeqs }, cancellationToken);

    public static async Task<LoadClient> ConnectAsync(Uri url, LoadClientOptions options, CancellationToken cancellationToken)
    {
        var load = new LoadClient(options);
        load._client = await TestClient.ConnectAsync(url, new TestClientOptions
        {
            Subprotocol = (options.MessagePack, options.Batched) switch
            {
                (true, true) => Subprotocols.MessagePackBatch,
                (true, false) => Subprotocols.MessagePack,
                (false, true) => Subprotocols.JsonBatch,
                (false, false) => Subprotocols.Json,
            },
            Token = options.Token,
            ConnectTimeout = null,
            OnFrame = load.OnFrame,
            OnClosed = _ =>
            {
                load._firstJoined.TrySetCanceled(); // closed before room.joined (a faulted task nobody reads would go unobserved)
                options.OnClosed?.Invoke(load);
            },
            Invoker = options.Invoker,
        }, cancellationToken);
        return load;
    }

    /// <summary>With seq tracking: the seqs of the room messages received, in arrival order.</summary>
    public IReadOnlyList<ulong> Seqs
    {
        get
        {
            lock (_seqs!)
            {
                return [.. _seqs];
            }
        }
    }

    /// <summary>The position of the last <c>room.joined</c>.</summary>
    public ulong JoinedSeq { get; private set; }

    /// <summary>Drops the connection without a close handshake, like a network failure.</summary>
    public void Abort() => _client.Abort();

    /// <summary>Sends an envelope written as JSON; the msgpack subprotocol gets the same map.</summary>
    public Task SendAsync(string json, CancellationToken cancellationToken) => _client.SendJsonAsync(json, cancellationToken);

    /// <summary>Sends a JSON frame already written as UTF-8 (a text message); <paramref name="frame"/> may be reused once this completes.</summary>
    public ValueTask SendJsonBytesAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken) =>
        _client.SendFrameAsync(frame, WebSocketMessageType.Text, cancellationToken);

    public Task JoinAsync(string room, CancellationToken cancellationToken) =>
        SendAsync($$"""{"type":"room.join","room":"{{room}}"}""", cancellationToken);

    /// <summary>Joins several rooms in one frame (the batch form).</summary>
    public Task JoinAsync(IEnumerable<string> rooms, CancellationToken cancellationToken) =>
        SendAsync("{\"type\":\"room.join\",\"payload\":{\"rooms\":[" + string.Join(',', rooms.Select(r => $$"""{"room":"{{r}}"}""")) + "]}}", cancellationToken);

    private void OnFrame(ReadOnlyMemory<byte> frame, WebSocketMessageType type)
    {
        Interlocked.Add(ref _bytes, frame.Length);
        if (type == WebSocketMessageType.Binary)
        {
            OnMessagePackFrame(frame);
        }
        else
        {
            OnJsonFrame(frame.Span);
        }
    }

    private void OnJsonFrame(ReadOnlySpan<byte> frame)
    {
        var typeAt = frame.IndexOf(TypeMarker);
        if (typeAt < 0)
        {
            return;
        }

        var type = frame[(typeAt + TypeMarker.Length)..];
        if (_options.OnPublishAnswer is { } answered && (type.StartsWith("ack\""u8) || type.StartsWith("error\""u8)))
        {
            answered(type[0] == (byte)'a');
            return;
        }

        if (type.StartsWith("room.joined"u8))
        {
            if (_seqs is not null)
            {
                JoinedSeq = ReadSeq(frame);
            }

            OnJoined();
            return;
        }

        if (!type.StartsWith("load."u8))
        {
            return;
        }

        Interlocked.Increment(ref _messages);
        if (_seqs is not null)
        {
            var seq = ReadSeq(frame);
            lock (_seqs)
            {
                _seqs.Add(seq);
            }
        }

        _options.Tracker?.OnJsonBody(frame);
        if (_options.Latency is { } latency)
        {
            var now = System.Diagnostics.Stopwatch.GetTimestamp();
            var sentAt = frame.IndexOf(SentMarker);
            if (sentAt >= 0 && Utf8Parser.TryParse(frame[(sentAt + SentMarker.Length)..], out long sent, out _))
            {
                // A LongConcurrentHistogram: recorded from every client's reader without a lock.
                latency.RecordElapsed(sent, now);
            }
        }
    }

    /// <summary>Whether anything reads a <c>load.*</c> payload's values (latency, delivery tracking); else payloads are skipped.</summary>
    private bool ReadsPayload => _options.Latency is not null || _options.Tracker is not null || _options.OnValue is not null;

    // Keys and the type compared as their UTF-8 bytes, never made into strings: this reader stays as cheap per frame as
    // the JSON one (the bare client it is compared with reads no payloads at all), and reads a payload only for whoever
    // uses its values.
    private void OnMessagePackFrame(ReadOnlyMemory<byte> frame)
    {
        var reader = new MessagePackReader(frame);
        ReadOnlySpan<byte> type = default;
        var typed = false;
        ulong seq = 0;
        long sent = -1, lseq = 0, lroom = 0;
        var fields = reader.ReadMapHeader();
        for (var i = 0; i < fields; i++)
        {
            var key = StringBytes(reader.ReadStringSequence());
            if (key.SequenceEqual("type"u8) && reader.NextMessagePackType == MessagePackType.String)
            {
                type = StringBytes(reader.ReadStringSequence());
                typed = true;
            }
            else if (key.SequenceEqual("seq"u8))
            {
                seq = reader.ReadUInt64();
            }
            else if (key.SequenceEqual("payload"u8) && ReadsPayload && reader.NextMessagePackType == MessagePackType.Map)
            {
                var inner = reader.ReadMapHeader();
                for (var j = 0; j < inner; j++)
                {
                    var name = StringBytes(reader.ReadStringSequence());
                    if (name.SequenceEqual("sent"u8))
                    {
                        sent = reader.ReadInt64();
                    }
                    else if (name.SequenceEqual("lseq"u8))
                    {
                        lseq = reader.ReadInt64();
                    }
                    else if (name.SequenceEqual("lroom"u8))
                    {
                        lroom = reader.ReadInt64();
                    }
                    else
                    {
                        reader.Skip();
                    }
                }
            }
            else
            {
                reader.Skip();
            }
        }

        if (_options.OnPublishAnswer is { } answered && typed && (type.SequenceEqual("ack"u8) || type.SequenceEqual("error"u8)))
        {
            answered(type[0] == (byte)'a');
            return;
        }

        if (typed && type.SequenceEqual("room.joined"u8))
        {
            JoinedSeq = seq;
            OnJoined();
            return;
        }

        if (!type.StartsWith("load."u8))
        {
            return;
        }

        Interlocked.Increment(ref _messages);
        if (_seqs is not null)
        {
            lock (_seqs)
            {
                _seqs.Add(seq);
            }
        }

        if (sent >= 0)
        {
            _options.Tracker?.OnMessage(sent, lseq, (int)lroom);
            _options.OnValue?.Invoke(sent, (int)lroom);
            _options.Latency?.RecordElapsed(sent, System.Diagnostics.Stopwatch.GetTimestamp());
        }
    }

    private void OnJoined()
    {
        if (Interlocked.Increment(ref _joined) == 1)
        {
            _firstJoined.TrySetResult(System.Diagnostics.Stopwatch.GetTimestamp());
        }
    }

    /// <summary>A MessagePack string's UTF-8 bytes (a frame is one buffer, so they are its first span); empty for nil.</summary>
    private static ReadOnlySpan<byte> StringBytes(ReadOnlySequence<byte>? value) => value is { } bytes ? bytes.FirstSpan : default;

    private static ulong ReadSeq(ReadOnlySpan<byte> frame)
    {
        var at = frame.IndexOf(SeqMarker);
        return at >= 0 && Utf8Parser.TryParse(frame[(at + SeqMarker.Length)..], out ulong seq, out _) ? seq : 0;
    }

    public ValueTask DisposeAsync() => _client.DisposeAsync();
}

internal sealed record LoadClientOptions
{
    public bool MessagePack { get; init; }

    /// <summary>The batch subprotocol of the format: several envelopes per server message, each still counted once.</summary>
    public bool Batched { get; init; }

    /// <summary>Sent as <c>access_token</c>; the shared bench token unless set (null: none).</summary>
    public string? Token { get; init; } = BenchTokens.Default;

    public DeliveryTracker? Tracker { get; init; }

    public HistogramBase? Latency { get; init; }

    /// <summary>
    /// Called for each <c>load.*</c> message read as MessagePack, on the client's reader: its publish time
    /// (<see cref="System.Diagnostics.Stopwatch"/> ticks) and its room's index (<see cref="LoadPayload"/>).
    /// </summary>
    public Action<long, int>? OnValue { get; init; }

    public bool TrackSeqs { get; init; }

    /// <summary>Connects through this invoker (its own connection stream, such as a <see cref="CoalescingStream"/>'s).</summary>
    public HttpMessageInvoker? Invoker { get; init; }

    public Action<LoadClient>? OnClosed { get; init; }

    /// <summary>Called for each answer to a publish (JSON subprotocol): true for <c>ack</c>, false for <c>error</c>.</summary>
    public Action<bool>? OnPublishAnswer { get; init; }
}
