using System.Net;
using System.Net.Sockets;

namespace Bridge.Tests.Infrastructure;

/// <summary>
/// A loopback TCP link between a worker and its nats-server that a test can cut and restore: while it is cut, the
/// worker's NATS connection is dropped and each of its reconnect attempts is closed at once, so the worker misses what a
/// backend publishes meanwhile (straight to the server) until the link is restored. Bytes are copied as they are; NATS
/// sees an ordinary connection.
/// </summary>
internal sealed class NatsLink : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly int _serverPort;
    private readonly CancellationTokenSource _stop = new();
    private readonly Lock _gate = new();
    private readonly List<Socket> _open = [];
    private readonly List<Task> _forwarding = [];
    private readonly Task _accepting;
    private bool _cut;

    public NatsLink(int serverPort)
    {
        _serverPort = serverPort;
        _listener.Start();
        _accepting = AcceptAsync();
    }

    /// <summary>The URL a worker connects to instead of the server's.</summary>
    public string Url => $"nats://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>Drops every connection through the link and refuses new ones until <see cref="Restore"/>.</summary>
    public void Cut()
    {
        lock (_gate)
        {
            _cut = true;
            foreach (var socket in _open)
            {
                socket.Dispose();
            }

            _open.Clear();
        }
    }

    /// <summary>Lets connections through again (the worker's next reconnect attempt gets through).</summary>
    public void Restore()
    {
        lock (_gate)
        {
            _cut = false;
        }
    }

    private async Task AcceptAsync()
    {
        while (true)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_stop.Token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
            {
                return;
            }

            lock (_gate)
            {
                if (_cut)
                {
                    client.Dispose();
                    continue;
                }

                _open.Add(client);
                _forwarding.Add(ForwardAsync(client));
            }
        }
    }

    private async Task ForwardAsync(Socket client)
    {
        var server = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            await server.ConnectAsync(IPAddress.Loopback, _serverPort, _stop.Token);
            lock (_gate)
            {
                if (!_open.Contains(client))
                {
                    return; // cut while connecting
                }

                _open.Add(server);
            }

            await using var fromClient = new NetworkStream(client, ownsSocket: false);
            await using var toServer = new NetworkStream(server, ownsSocket: false);
            var up = fromClient.CopyToAsync(toServer, _stop.Token);
            var down = toServer.CopyToAsync(fromClient, _stop.Token);
            await Task.WhenAny(up, down);
            // One side closed: close both, and let the other copy end too.
            client.Dispose();
            server.Dispose();
            await Task.WhenAll(up, down);
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or IOException or ObjectDisposedException)
        {
            // Cut, or one side closed.
        }
        finally
        {
            client.Dispose();
            server.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        Cut();
        await _accepting;
        Task[] forwarding;
        lock (_gate)
        {
            forwarding = [.. _forwarding];
        }

        await Task.WhenAll(forwarding);
        _stop.Dispose();
    }
}
