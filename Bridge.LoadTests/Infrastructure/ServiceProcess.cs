using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Bridge.Testing;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// A server the harness starts on loopback for a peer benchmark (redis-server, the SignalR peer, nats-server with
/// its WebSocket listener): its own process so its CPU and memory are sampled alone; killed on dispose.
/// </summary>
internal sealed class ServiceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string? _tempDir;

    private ServiceProcess(Process process, string? tempDir)
    {
        _process = process;
        _tempDir = tempDir;
    }

    public int Pid => _process.Id;

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public static ServiceProcess Start(string name, string file, IEnumerable<string> args, string? tempDir = null)
    {
        var psi = new ProcessStartInfo(file) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in args)
        {
            psi.ArgumentList.Add(a);
        }

        var process = Process.Start(psi) ?? throw new InvalidOperationException($"{name} did not start");
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"[{name}] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new ServiceProcess(process, tempDir);
    }

    /// <summary>redis-server on a free loopback port, nothing persisted.</summary>
    public static async Task<(ServiceProcess Process, int Port)> StartRedisAsync(CancellationToken cancellationToken)
    {
        var port = FreePort();
        var redis = Start("redis", RedisServer(), ["--port", port.ToString(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]);
        await redis.WaitAsync(async () =>
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, port, cancellationToken);
            var stream = tcp.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), cancellationToken);
            var buffer = new byte[16];
            var n = await stream.ReadAsync(buffer, cancellationToken);
            return Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal);
        }, cancellationToken);
        return (redis, port);
    }

    /// <summary>The SignalR peer (bench/SignalRPeer) on a free port, using redis at <paramref name="redisPort"/>.</summary>
    public static async Task<(ServiceProcess Process, Uri Url)> StartSignalRAsync(int redisPort, string configuration, CancellationToken cancellationToken)
    {
        var dll = Path.Combine(RepoPaths.Root, "bench", "SignalRPeer", "bin", configuration, "net10.0", "SignalRPeer.dll");
        if (!File.Exists(dll))
        {
            throw new InvalidOperationException($"{dll} not found; build the solution with -c {configuration} first.");
        }

        var port = FreePort();
        var url = new Uri($"http://127.0.0.1:{port}");
        var peer = Start("signalr", "dotnet", [dll, $"--urls={url}", $"--Redis=127.0.0.1:{redisPort}"]);
        await peer.WaitForHealthAsync(new Uri(url, "/healthz"), cancellationToken);
        return (peer, url);
    }

    /// <summary>nats-server (core only) with its own WebSocket listener, no TLS; returns the nats:// and ws:// URLs.</summary>
    public static async Task<(ServiceProcess Process, string NatsUrl, Uri WebSocketUrl)> StartNatsWebSocketAsync(CancellationToken cancellationToken)
    {
        var dir = Path.Combine(Path.GetTempPath(), "bridge-bench", "natsws-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var (port, monitor, ws) = (FreePort(), FreePort(), FreePort());
        var conf = Path.Combine(dir, "nats.conf");
        await File.WriteAllTextAsync(conf, $$"""
            listen: "127.0.0.1:{{port}}"
            http: "127.0.0.1:{{monitor}}"
            websocket {
              listen: "127.0.0.1:{{ws}}"
              no_tls: true
            }
            """, cancellationToken);
        var nats = Start("nats-ws", RepoPaths.NatsServer(), ["-c", conf], dir);
        await nats.WaitForHealthAsync(new Uri($"http://127.0.0.1:{monitor}/healthz"), cancellationToken);
        return (nats, $"nats://127.0.0.1:{port}", new Uri($"ws://127.0.0.1:{ws}"));
    }

    private static string RedisServer()
    {
        foreach (var candidate in new[] { Environment.GetEnvironmentVariable("REDIS_SERVER_BIN"), Path.Combine(RepoPaths.Root, "tools", "redis", "redis-server") })
        {
            if (!string.IsNullOrEmpty(candidate) && File.Exists(candidate))
            {
                return candidate;
            }
        }

        // Installs it into tools/redis the way `make bench` does.
        var psi = new ProcessStartInfo(Path.Combine(RepoPaths.Root, "scripts", "ensure-redis.sh")) { RedirectStandardOutput = true, UseShellExecute = false };
        using var p = Process.Start(psi)!;
        var path = p.StandardOutput.ReadToEnd().Trim();
        p.WaitForExit();
        return p.ExitCode == 0 && File.Exists(path) ? path : throw new InvalidOperationException("no redis-server: run scripts/ensure-redis.sh");
    }

    public Task WaitForHealthAsync(Uri url, CancellationToken cancellationToken) => WaitAsync(async () =>
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        return (await http.GetAsync(url, cancellationToken)).IsSuccessStatusCode;
    }, cancellationToken);

    private async Task WaitAsync(Func<Task<bool>> ready, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException($"{_process.StartInfo.FileName} exited with {_process.ExitCode}");
            }

            try
            {
                if (await ready())
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or SocketException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
            }

            await Task.Delay(100, cancellationToken);
        }

        await DisposeAsync();
        throw new TimeoutException($"{_process.StartInfo.FileName} did not become ready");
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        catch (InvalidOperationException)
        {
        }

        _process.Dispose();
        if (_tempDir is not null)
        {
            try
            {
                Directory.Delete(_tempDir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
