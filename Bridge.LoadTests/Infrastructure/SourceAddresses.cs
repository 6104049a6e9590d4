using System.Net;
using System.Net.Sockets;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// Spreads outgoing connections over several loopback source addresses (127.0.0.2, .3, ...): a socket bound to
/// an address before connecting takes its port from that address's ephemeral range (about 28,000 ports), so
/// tens of thousands of connections need more than one source address. Every address stays in 127.0.0.0/8.
/// </summary>
internal static class SourceAddresses
{
    private const int Spread = 16;
    private static int s_next;

    /// <summary>An HTTP handler for <see cref="System.Net.WebSockets.ClientWebSocket"/> that binds each new connection to the next source address.</summary>
    public static HttpMessageInvoker CreateInvoker() => new(new SocketsHttpHandler
    {
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                var i = Interlocked.Increment(ref s_next);
                socket.Bind(new IPEndPoint(new IPAddress([127, 0, 0, (byte)(2 + (i & int.MaxValue) % Spread)]), 0));
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
        PooledConnectionLifetime = TimeSpan.Zero,
    });

    /// <summary>The open-file limit of this process (each connection holds a file descriptor on both sides).</summary>
    public static int FileDescriptorLimit()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return int.TryParse(parts[3], out var soft) ? soft : int.MaxValue;
                }
            }
        }
        catch (IOException)
        {
        }

        return int.MaxValue;
    }
}
