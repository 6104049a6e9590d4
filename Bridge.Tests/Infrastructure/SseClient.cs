using System.Text.Json.Nodes;
using System.Threading.Channels;

namespace Bridge.Tests.Infrastructure;

public sealed record SseEvent(string? Id, string Event, string Data)
{
    public JsonObject Json => JsonNode.Parse(Data)!.AsObject();
}

/// <summary>
/// An EventSource-like client: reads the event stream line by line and remembers the last event id, which a
/// reconnect sends as Last-Event-ID, exactly as a browser does.
/// </summary>
public sealed class SseClient : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = Timeout.InfiniteTimeSpan };
    private readonly CancellationTokenSource _stop = new();
    private readonly Channel<SseEvent> _events = Channel.CreateUnbounded<SseEvent>();
    private readonly Channel<string> _comments = Channel.CreateUnbounded<string>();
    private Task _reader = Task.CompletedTask;

    public HttpResponseMessage Response { get; private set; } = null!;

    public string? LastEventId { get; private set; }

    public int? Retry { get; private set; }

    /// <summary>A pause after each event read: a client that reads, but slower than its rooms publish.</summary>
    public TimeSpan ReadDelay { get; set; }

    private HttpClient? _ownHttp;

    /// <param name="receiveBufferBytes">When set, the TCP receive buffer of this client's socket: a small one makes a
    /// slow reader back up the server quickly.</param>
    public static async Task<SseClient> ConnectAsync(Uri baseUrl, string rooms, string? lastEventId = null, string? token = null, int? receiveBufferBytes = null)
    {
        var client = new SseClient { LastEventId = lastEventId };
        var http = Http;
        if (receiveBufferBytes is { } size)
        {
            http = client._ownHttp = new HttpClient(new SocketsHttpHandler
            {
                ConnectCallback = async (context, ct) =>
                {
                    var s = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { ReceiveBufferSize = size };
                    await s.ConnectAsync(context.DnsEndPoint, ct);
                    return new System.Net.Sockets.NetworkStream(s, ownsSocket: true);
                },
            }) { Timeout = Timeout.InfiniteTimeSpan };
        }

        var query = token is null ? $"/sse?rooms={rooms}" : $"/sse?rooms={rooms}&access_token={Uri.EscapeDataString(token)}";
        var request = new HttpRequestMessage(HttpMethod.Get, new Uri(baseUrl, query));
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (lastEventId is not null)
        {
            request.Headers.Add("Last-Event-ID", lastEventId);
        }

        client.Response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
        if (client.Response.IsSuccessStatusCode)
        {
            client._reader = Task.Run(client.ReadAsync);
        }

        return client;
    }

    private async Task ReadAsync()
    {
        try
        {
            using var stream = await Response.Content.ReadAsStreamAsync(_stop.Token);
            using var reader = new StreamReader(stream);
            string? id = null, type = null;
            var data = new List<string>();
            while (await reader.ReadLineAsync(_stop.Token) is { } line)
            {
                if (line.Length == 0)
                {
                    if (data.Count > 0)
                    {
                        if (id is not null)
                        {
                            LastEventId = id;
                        }

                        _events.Writer.TryWrite(new SseEvent(id, type ?? "message", string.Join('\n', data)));
                        if (ReadDelay > TimeSpan.Zero)
                        {
                            await Task.Delay(ReadDelay);
                        }
                    }

                    id = null;
                    type = null;
                    data.Clear();
                }
                else if (line.StartsWith(':'))
                {
                    _comments.Writer.TryWrite(line);
                }
                else if (line.StartsWith("id: ", StringComparison.Ordinal))
                {
                    id = line[4..];
                }
                else if (line.StartsWith("event: ", StringComparison.Ordinal))
                {
                    type = line[7..];
                }
                else if (line.StartsWith("data: ", StringComparison.Ordinal))
                {
                    data.Add(line[6..]);
                }
                else if (line.StartsWith("retry: ", StringComparison.Ordinal))
                {
                    Retry = int.Parse(line[7..]);
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or HttpRequestException)
        {
        }
        finally
        {
            _events.Writer.TryComplete();
        }
    }

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
    }
}
