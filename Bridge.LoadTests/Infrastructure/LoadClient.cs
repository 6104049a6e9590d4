using System.Buffers.Text;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using HdrHistogram;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// A load-test WebSocket client kept cheap on purpose (the load generator shares the machine with the worker):
/// frames are not fully parsed; it counts them by type and reads the publish timestamp out of the payload.
/// </summary>
internal sealed class LoadClient : IAsyncDisposable
{
    private static readonly byte[] TypeMarker = "\"type\":\""u8.ToArray();
    private static readonly byte[] SentMarker = "\"sent\":"u8.ToArray();
    private static readonly byte[] SeqMarker = "\"seq\":"u8.ToArray();

    private readonly ClientWebSocket _socket = new();
    private readonly Task _reader;
    private readonly HistogramBase? _latency;
    private readonly List<ulong>? _seqs;
    private long _messages;
    private long _joined;

    private LoadClient(ClientWebSocket socket, HistogramBase? latency, bool start, bool trackSeqs)
    {
        _socket = socket;
        _latency = latency;
        _seqs = trackSeqs ? [] : null;
        _reader = start ? Task.Run(ReadLoopAsync) : Task.CompletedTask;
    }

    public long Messages => Interlocked.Read(ref _messages);

    public long Joined => Interlocked.Read(ref _joined);

    /// <summary>The close code the server sent, if it closed the connection.</summary>
    public int? CloseStatus { get; private set; }

    public static async Task<LoadClient> ConnectAsync(Uri url, HistogramBase? latency, CancellationToken cancellationToken, bool trackSeqs = false)
    {
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("bridge.v1.json");
        await socket.ConnectAsync(url, cancellationToken);
        return new LoadClient(socket, latency, start: true, trackSeqs);
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
    public void Abort() => _socket.Abort();

    public Task SendAsync(string json, CancellationToken cancellationToken) =>
        _socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, cancellationToken);

    public Task JoinAsync(string room, CancellationToken cancellationToken) =>
        SendAsync($$"""{"type":"room.join","room":"{{room}}"}""", cancellationToken);

    private async Task ReadLoopAsync()
    {
        var buffer = new byte[64 * 1024];
        try
        {
            while (true)
            {
                var count = 0;
                ValueWebSocketReceiveResult result;
                do
                {
                    result = await _socket.ReceiveAsync(buffer.AsMemory(count), CancellationToken.None);
                    count += result.Count;
                }
                while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

                if (result.MessageType == WebSocketMessageType.Close)
                {
                    CloseStatus = (int?)_socket.CloseStatus;
                    return;
                }

                OnFrame(buffer.AsSpan(0, count));
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private void OnFrame(ReadOnlySpan<byte> frame)
    {
        var typeAt = frame.IndexOf(TypeMarker);
        if (typeAt < 0)
        {
            return;
        }

        var type = frame[(typeAt + TypeMarker.Length)..];
        if (type.StartsWith("room.joined"u8))
        {
            if (_seqs is not null)
            {
                JoinedSeq = ReadSeq(frame);
            }

            Interlocked.Increment(ref _joined);
            return;
        }

        if (!type.StartsWith("load."u8))
        {
            return;
        }

        var now = Stopwatch.GetTimestamp();
        Interlocked.Increment(ref _messages);
        if (_seqs is not null)
        {
            var seq = ReadSeq(frame);
            lock (_seqs)
            {
                _seqs.Add(seq);
            }
        }

        if (_latency is null)
        {
            return;
        }

        var sentAt = frame.IndexOf(SentMarker);
        if (sentAt >= 0 && Utf8Parser.TryParse(frame[(sentAt + SentMarker.Length)..], out long sent, out _))
        {
            var micros = (long)Stopwatch.GetElapsedTime(sent, now).TotalMicroseconds;
            // A LongConcurrentHistogram: recorded from every client's reader without a lock.
            _latency.RecordValue(Math.Max(0, micros));
        }
    }

    private static ulong ReadSeq(ReadOnlySpan<byte> frame)
    {
        var at = frame.IndexOf(SeqMarker);
        return at >= 0 && Utf8Parser.TryParse(frame[(at + SeqMarker.Length)..], out ulong seq, out _) ? seq : 0;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            if (_socket.State == WebSocketState.Open)
            {
                await _socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", cts.Token);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException)
        {
        }

        _socket.Abort();
        await _reader;
        _socket.Dispose();
    }
}
