using Bridge.LoadTests.Harness;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// A load-test Server-Sent Events client of <c>GET /sse?rooms=..</c>: reads the stream line by line as bytes and
/// hands each <c>data:</c> line of a <c>load.*</c> event (the JSON envelope) to a <see cref="DeliveryTracker"/>.
/// </summary>
internal sealed class SseClient : IAsyncDisposable
{
    private static readonly HttpClient Http = new(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero }) { Timeout = Timeout.InfiniteTimeSpan };
    private readonly CancellationTokenSource _cts = new();
    private readonly DeliveryTracker? _tracker;
    private readonly Task _reader;
    private readonly HttpResponseMessage _response;
    private long _joined;
    private long _messages;

    private SseClient(HttpResponseMessage response, Stream stream, DeliveryTracker? tracker)
    {
        _response = response;
        _tracker = tracker;
        _reader = Task.Run(() => ReadLoopAsync(stream));
    }

    public long Joined => Interlocked.Read(ref _joined);

    /// <summary>Events of <c>load.*</c> messages received.</summary>
    public long Messages => Interlocked.Read(ref _messages);

    /// <param name="lastEventId">A resume position (<c>?lastEventId=</c>), or null to join live.</param>
    public static async Task<SseClient> ConnectAsync(
        Uri workerUrl, IEnumerable<string> rooms, DeliveryTracker? tracker, string? token, CancellationToken cancellationToken, string? lastEventId = null)
    {
        var query = "/sse?rooms=" + Uri.EscapeDataString(string.Join(',', rooms)) + (lastEventId is null ? "" : "&lastEventId=" + Uri.EscapeDataString(lastEventId));
        var url = BenchTokens.WithToken(new Uri(workerUrl, query), token);
        var response = await Http.GetAsync(url, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            response.Dispose();
            throw new HttpRequestException($"SSE: status code '{(int)response.StatusCode}'", null, response.StatusCode);
        }

        return new SseClient(response, await response.Content.ReadAsStreamAsync(cancellationToken), tracker);
    }

    private async Task ReadLoopAsync(Stream stream)
    {
        var buffer = new byte[64 * 1024];
        var filled = 0;
        try
        {
            while (true)
            {
                if (filled == buffer.Length)
                {
                    Array.Resize(ref buffer, buffer.Length * 2);
                }

                var n = await stream.ReadAsync(buffer.AsMemory(filled), _cts.Token);
                if (n == 0)
                {
                    return;
                }

                filled += n;
                var start = 0;
                int newline;
                while ((newline = buffer.AsSpan(start, filled - start).IndexOf((byte)'\n')) >= 0)
                {
                    OnLine(buffer.AsSpan(start, newline));
                    start += newline + 1;
                }

                buffer.AsSpan(start, filled - start).CopyTo(buffer);
                filled -= start;
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or HttpRequestException)
        {
        }
    }

    private void OnLine(ReadOnlySpan<byte> line)
    {
        if (!line.StartsWith("data: "u8))
        {
            return;
        }

        if (line.IndexOf("\"type\":\"room.joined\""u8) >= 0)
        {
            Interlocked.Increment(ref _joined);
        }
        else if (line.IndexOf("\"type\":\"load."u8) >= 0)
        {
            Interlocked.Increment(ref _messages);
            _tracker?.OnJsonBody(line);
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _cts.CancelAsync();
        _response.Dispose();
        await _reader;
        _cts.Dispose();
    }
}
