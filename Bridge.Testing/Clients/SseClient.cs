using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading.Channels;
using Bridge.Contracts;

namespace Bridge.Testing;

public sealed record SseEvent(string? Id, string Event, string Data)
{
    public JsonObject Json => JsonNode.Parse(Data)!.AsObject();
}

/// <summary>Handed each event in raw mode (its <c>event:</c> type and its data); the spans are valid only during the call.</summary>
public delegate void SseEventHandler(ReadOnlySpan<byte> eventType, ReadOnlySpan<byte> data);

/// <summary>What a <see cref="SseClient"/> asks for and what it does with the events.</summary>
public sealed class SseClientOptions
{
    /// <summary>The <c>rooms</c> query parameter, sent as given (comma-separated room names; tests send malformed ones too).</summary>
    public required string Rooms { get; init; }

    /// <summary>Sent as <c>Last-Event-ID</c>, as a browser's EventSource does when it reconnects.</summary>
    public string? LastEventId { get; init; }

    /// <summary>Sent as the <c>access_token</c> query parameter; none when null.</summary>
    public string? Token { get; init; }

    /// <summary>When set, the TCP receive buffer of this client's socket: a small one makes a slow reader back up the server quickly.</summary>
    public int? ReceiveBufferBytes { get; init; }

    /// <summary>Raw mode, for clients that must stay cheap (the load harness): every event goes here and is not queued.
    /// If it throws, the stream is closed and the exception kept in <see cref="SseClient.EventHandlerError"/>.</summary>
    public SseEventHandler? OnEvent { get; init; }
}

/// <summary>
/// The SSE client of the tests and the load harness, EventSource-like: reads <c>GET /sse?rooms=..</c> as bytes, line
/// by line, remembers the last event id (which a reconnect sends as Last-Event-ID, exactly as a browser does), and
/// queues each event for the <c>WaitFor</c> methods, or hands it raw to <see cref="SseClientOptions.OnEvent"/>.
/// </summary>
public sealed class SseClient : IAsyncDisposable
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = Timeout.InfiniteTimeSpan };
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<SseEvent> _events = Channel.CreateUnbounded<SseEvent>();
    private readonly Channel<string> _comments = Channel.CreateUnbounded<string>();
    private readonly SseEventHandler? _onEvent;
    private HttpClient? _ownHttp;
    private Task _reader = Task.CompletedTask;
    private long _joined;
    private Exception? _eventHandlerError;

    private SseClient(SseClientOptions options)
    {
        LastEventId = options.LastEventId;
        _onEvent = options.OnEvent;
    }

    public HttpResponseMessage Response { get; private set; } = null!;

    /// <summary>What <see cref="SseClientOptions.OnEvent"/> threw, if it did: reading then stopped and the stream was closed.</summary>
    public Exception? EventHandlerError => Volatile.Read(ref _eventHandlerError);

    public string? LastEventId { get; private set; }

    public int? Retry { get; private set; }

    /// <summary>The <c>room.joined</c> events received so far.</summary>
    public long Joined => Interlocked.Read(ref _joined);

    /// <summary>A pause after each event read: a client that reads, but slower than its rooms publish.</summary>
    public TimeSpan ReadDelay { get; set; }

    /// <param name="receiveBufferBytes">When set, the TCP receive buffer of this client's socket: a small one makes a
    /// slow reader back up the server quickly.</param>
    public static Task<SseClient> ConnectAsync(Uri baseUrl, string rooms, string? lastEventId = null, string? token = null, int? receiveBufferBytes = null) =>
        ConnectAsync(baseUrl, new SseClientOptions { Rooms = rooms, LastEventId = lastEventId, Token = token, ReceiveBufferBytes = receiveBufferBytes });

    /// <summary>Sends the request and starts reading when it succeeded; a refusal is left in <see cref="Response"/>.</summary>
    public static async Task<SseClient> ConnectAsync(Uri baseUrl, SseClientOptions options, CancellationToken cancellationToken = default)
    {
        var client = new SseClient(options);
        var http = Http;
        if (options.ReceiveBufferBytes is { } size)
        {
            http = client._ownHttp = new HttpClient(new SocketsHttpHandler { ConnectCallback = TestClient.SmallBufferConnect(size) })
            {
                Timeout = Timeout.InfiniteTimeSpan,
            };
        }

        using var request = new HttpRequestMessage(HttpMethod.Get, Tokens.WithToken(new Uri(baseUrl, $"/sse?rooms={options.Rooms}"), options.Token));
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (options.LastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", options.LastEventId);
        }

        client.Response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (client.Response.IsSuccessStatusCode)
        {
            var stream = await client.Response.Content.ReadAsStreamAsync(cancellationToken);
            client._reader = Task.Run(() => client.ReadAsync(stream));
        }

        return client;
    }

    private async Task ReadAsync(Stream stream)
    {
        var buffer = new byte[64 * 1024];
        var filled = 0;
        var parser = new EventParser(this);
        try
        {
            while (true)
            {
                if (filled == buffer.Length)
                {
                    Array.Resize(ref buffer, buffer.Length * 2);
                }

                var n = await stream.ReadAsync(buffer.AsMemory(filled), _stop.Token);
                if (n == 0)
                {
                    return;
                }

                filled += n;
                var start = 0;
                int newline;
                while ((newline = buffer.AsSpan(start, filled - start).IndexOf((byte)'\n')) >= 0)
                {
                    var dispatched = parser.OnLine(buffer.AsSpan(start, newline));
                    start += newline + 1;
                    if (dispatched && ReadDelay > TimeSpan.Zero)
                    {
                        await Task.Delay(ReadDelay, _stop.Token);
                    }
                }

                buffer.AsSpan(start, filled - start).CopyTo(buffer);
                filled -= start;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException or ObjectDisposedException)
        {
        }
        catch (Exception ex)
        {
            // An event handler that threw: drop the stream (the server sees a gone client, not one that stopped
            // reading) and keep the reason for the caller.
            Volatile.Write(ref _eventHandlerError, ex);
            Response.Dispose();
        }
        finally
        {
            _events.Writer.TryComplete();
        }
    }

    /// <summary>The event stream's fields (id, event, data, retry, comments), one line at a time; an empty line ends an event.</summary>
    private sealed class EventParser(SseClient client)
    {
        private readonly ArrayBufferWriter<byte> _data = new();
        private readonly ArrayBufferWriter<byte> _type = new();
        private string? _id;
        private bool _hasData;

        /// <summary>True when the line ended an event that was handed on.</summary>
        public bool OnLine(ReadOnlySpan<byte> line)
        {
            if (line.EndsWith("\r"u8))
            {
                line = line[..^1];
            }

            if (line.IsEmpty)
            {
                var dispatched = _hasData && client.Dispatch(_id, _type.WrittenSpan, _data.WrittenSpan);
                _id = null;
                _hasData = false;
                _data.ResetWrittenCount();
                _type.ResetWrittenCount();
                return dispatched;
            }

            if (line[0] == (byte)':')
            {
                client._comments.Writer.TryWrite(Encoding.UTF8.GetString(line));
                return false;
            }

            var colon = line.IndexOf((byte)':');
            var field = colon < 0 ? line : line[..colon];
            var value = colon < 0 ? [] : line[(colon + 1)..];
            if (value.StartsWith(" "u8))
            {
                value = value[1..];
            }

            if (field.SequenceEqual("data"u8))
            {
                if (_hasData)
                {
                    _data.Write("\n"u8);
                }

                _data.Write(value);
                _hasData = true;
            }
            else if (field.SequenceEqual("event"u8))
            {
                _type.ResetWrittenCount();
                _type.Write(value);
            }
            else if (field.SequenceEqual("id"u8))
            {
                _id = Encoding.UTF8.GetString(value);
            }
            else if (field.SequenceEqual("retry"u8) && int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var retry))
            {
                client.Retry = retry;
            }

            return false;
        }
    }

    private bool Dispatch(string? id, ReadOnlySpan<byte> type, ReadOnlySpan<byte> data)
    {
        if (id is not null)
        {
            LastEventId = id;
        }

        if (type.SequenceEqual(RoomJoined))
        {
            Interlocked.Increment(ref _joined);
        }

        if (_onEvent is { } onEvent)
        {
            onEvent(type, data);
        }
        else
        {
            _events.Writer.TryWrite(new SseEvent(id, type.IsEmpty ? "message" : Encoding.UTF8.GetString(type), Encoding.UTF8.GetString(data)));
        }

        return true;
    }

    private static ReadOnlySpan<byte> RoomJoined => "room.joined"u8;

    public async Task<SseEvent> WaitForAsync(Func<SseEvent, bool> match, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        try
        {
            while (true)
            {
                var e = await _events.Reader.ReadAsync(cts.Token);
                if (match(e))
                {
                    return e;
                }
            }
        }
        catch (OperationCanceledException)
        {
            throw new TimeoutException("the expected event did not arrive in time");
        }
    }

    public async Task<List<SseEvent>> CollectAsync(int count, Func<SseEvent, bool> match, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(20));
        var list = new List<SseEvent>();
        while (list.Count < count)
        {
            list.Add(await WaitForAsync(match, deadline - DateTime.UtcNow));
        }

        return list;
    }

    public async Task<string> NextCommentAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        return await _comments.Reader.ReadAsync(cts.Token);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        Response?.Dispose();
        await _reader;
        _ownHttp?.Dispose();
        _stop.Dispose();
    }
}
