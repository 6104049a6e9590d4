using System.Net.WebSockets;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// An idle WebSocket for memory-per-connection runs, the same for every peer: connect (from a spread of loopback
/// source addresses), send the peer's hello if it needs one, then keep one small receive pending so that pings
/// are answered, and do nothing else.
/// </summary>
internal sealed class IdleSocket : IAsyncDisposable
{
    private static readonly Lazy<HttpMessageInvoker> Invoker = new(SourceAddresses.CreateInvoker);
    private readonly ClientWebSocket _socket;
    private readonly Task _reader;

    private IdleSocket(ClientWebSocket socket)
    {
        _socket = socket;
        _reader = Task.Run(ReadAsync);
    }

    public bool IsOpen => _socket.State == WebSocketState.Open;

    public static async Task<IdleSocket> ConnectAsync(IdleEndpoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        if (endpoint.SubProtocol is not null)
        {
            socket.Options.AddSubProtocol(endpoint.SubProtocol);
        }

        try
        {
            await socket.ConnectAsync(endpoint.Url, Invoker.Value, cancellationToken);
            if (endpoint.Hello is not null)
            {
                await socket.SendAsync(endpoint.Hello, endpoint.HelloIsText ? WebSocketMessageType.Text : WebSocketMessageType.Binary, true, cancellationToken);
            }
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        return new IdleSocket(socket);
    }

    private async Task ReadAsync()
    {
        var buffer = new byte[256];
        try
        {
            while (true)
            {
                var r = await _socket.ReceiveAsync(buffer.AsMemory(), CancellationToken.None);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Abort();
        await _reader;
        _socket.Dispose();
    }
}

/// <summary>Where and how an idle connection is opened for one peer.</summary>
internal sealed record IdleEndpoint(Uri Url, string? SubProtocol, byte[]? Hello, bool HelloIsText);
