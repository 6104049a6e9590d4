using System.Globalization;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// The servers of the peer benchmarks (the SignalR peer, nats-server with its WebSocket listener; redis through
/// <see cref="Services"/>): each its own <see cref="ChildProcess"/> so its CPU and memory are sampled alone.
/// </summary>
internal static class ServiceProcess
{
    /// <summary>redis-server on a free loopback port, nothing persisted.</summary>
    public static Task<(ChildProcess Process, int Port)> StartRedisAsync(CancellationToken cancellationToken) => Services.StartRedisAsync(cancellationToken);

    /// <summary>The SignalR peer (bench/SignalRPeer) on a free port, using redis at <paramref name="redisPort"/>.</summary>
    public static async Task<(ChildProcess Process, Uri Url)> StartSignalRAsync(int redisPort, string configuration, CancellationToken cancellationToken)
    {
        var dll = Path.Combine(RepoPaths.Root, "bench", "SignalRPeer", "bin", configuration, "net10.0", "SignalRPeer.dll");
        if (!File.Exists(dll))
        {
            throw new InvalidOperationException($"{dll} not found; build the solution with -c {configuration} first.");
        }

        var url = new Uri($"http://127.0.0.1:{ChildProcess.FreePort().ToString(CultureInfo.InvariantCulture)}");
        var peer = ChildProcess.Start("signalr", "dotnet", [dll, $"--urls={url}", $"--Redis=127.0.0.1:{redisPort.ToString(CultureInfo.InvariantCulture)}"],
            ChildProcessOptions.Echo("signalr", stdout: false));
        return (await peer.ReadyOrDisposedAsync(p => p.WaitForHttpAsync(new Uri(url, "/healthz"), TimeSpan.FromSeconds(60), cancellationToken)), url);
    }

    /// <summary>nats-server (core only) with its own WebSocket listener, no TLS; returns the nats:// and ws:// URLs.</summary>
    public static async Task<(ChildProcess Process, string NatsUrl, Uri WebSocketUrl)> StartNatsWebSocketAsync(CancellationToken cancellationToken)
    {
        var dir = Path.Combine(Path.GetTempPath(), "bridge-bench", "natsws-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(dir);
        var (port, monitor, ws) = (ChildProcess.FreePort(), ChildProcess.FreePort(), ChildProcess.FreePort());
        var conf = Path.Combine(dir, "nats.conf");
        await File.WriteAllTextAsync(conf, $$"""
            listen: "127.0.0.1:{{port}}"
            http: "127.0.0.1:{{monitor}}"
            websocket {
              listen: "127.0.0.1:{{ws}}"
              no_tls: true
            }
            """, cancellationToken);
        var nats = ChildProcess.Start("nats-ws", RepoPaths.NatsServer(), ["-c", conf], ChildProcessOptions.Echo("nats-ws", stdout: false) with { TempDirectory = dir });
        await nats.ReadyOrDisposedAsync(p => p.WaitForHttpAsync(new Uri($"http://127.0.0.1:{monitor}/healthz"), TimeSpan.FromSeconds(60), cancellationToken));
        return (nats, $"nats://127.0.0.1:{port}", new Uri($"ws://127.0.0.1:{ws}"));
    }
}
