using System.Net.WebSockets;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// An idle WebSocket for memory-per-connection runs, the same for every peer: a <see cref="TestClient"/> in raw
/// mode that connects (from a spread of loopback source addresses), sends the peer's hello if it needs one, then
/// keeps a small read pending so that pings are answered, and does nothing else.
/// </summary>
internal sealed class IdleSocket : IAsyncDisposable
{
    private static readonly Lazy<HttpMessageInvoker> Invoker = new(SourceAddresses.CreateInvoker);
    private readonly TestClient _client;

    private IdleSocket(TestClient client) => _client = client;

    public bool IsOpen => _client.IsOpen;

    public static async Task<IdleSocket> ConnectAsync(IdleEndpoint endpoint, CancellationToken cancellationToken)
    {
        var client = await TestClient.ConnectAsync(endpoint.Url, new TestClientOptions
        {
            Subprotocol = endpoint.SubProtocol,
            Invoker = Invoker.Value,
            Configure = o => o.KeepAliveInterval = TimeSpan.Zero,
            ConnectTimeout = null,
            ReadBufferBytes = 256,
            OnFrame = static (_, _) => { },
        }, cancellationToken);
        var idle = new IdleSocket(client);
        if (endpoint.Hello is not null)
        {
            try
            {
                await client.SendRawAsync(endpoint.Hello, endpoint.HelloIsText ? WebSocketMessageType.Text : WebSocketMessageType.Binary, cancellationToken);
            }
            catch
            {
                await idle.DisposeAsync();
                throw;
            }
        }

        return idle;
    }

    /// <summary>Drops the connection (no close handshake: thousands of them end at once).</summary>
    public ValueTask DisposeAsync()
    {
        _client.Abort();
        return _client.DisposeAsync();
    }
}

/// <summary>Where and how an idle connection is opened for one peer.</summary>
internal sealed record IdleEndpoint(Uri Url, string? SubProtocol, byte[]? Hello, bool HelloIsText);
