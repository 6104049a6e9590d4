using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Bridge.Testing;

/// <summary>The third-party servers tests and benchmarks run, each a <see cref="ChildProcess"/> on loopback.</summary>
public static class Services
{
    /// <summary>redis-server (scripts/ensure-redis.sh, or $REDIS_SERVER_BIN) on a free loopback port, nothing persisted.</summary>
    public static async Task<(ChildProcess Process, int Port)> StartRedisAsync(CancellationToken cancellationToken)
    {
        var port = ChildProcess.FreePort();
        var redis = ChildProcess.Start("redis", await RedisServerAsync(cancellationToken),
            ["--port", port.ToString(CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"],
            ChildProcessOptions.Echo("redis", stdout: false));
        await redis.ReadyOrDisposedAsync(p => p.WaitUntilAsync(async ct =>
        {
            using var tcp = new TcpClient();
            await tcp.ConnectAsync(IPAddress.Loopback, port, ct);
            var stream = tcp.GetStream();
            await stream.WriteAsync("PING\r\n"u8.ToArray(), ct);
            var buffer = new byte[16];
            var n = await stream.ReadAsync(buffer, ct);
            return Encoding.ASCII.GetString(buffer, 0, n).StartsWith("+PONG", StringComparison.Ordinal);
        }, TimeSpan.FromSeconds(60), cancellationToken));
        return (redis, port);
    }

    /// <summary>
    /// nginx (scripts/ensure-nginx.sh) with <paramref name="configFile"/>, its prefix (logs, temp files) in
    /// <paramref name="prefix"/>; returns once <paramref name="health"/> answers.
    /// </summary>
    public static async Task<ChildProcess> StartNginxAsync(string prefix, string configFile, Uri health, ChildProcessOptions? output, CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Path.Combine(prefix, "logs"));
        Directory.CreateDirectory(Path.Combine(prefix, "temp"));
        var nginx = ChildProcess.Start("nginx", await RepoPaths.EnsureToolAsync("ensure-nginx.sh", cancellationToken), ["-p", prefix, "-c", configFile], output);
        return await nginx.ReadyOrDisposedAsync(p => p.WaitForHttpAsync(health, TimeSpan.FromSeconds(15), cancellationToken));
    }

    private static async Task<string> RedisServerAsync(CancellationToken cancellationToken)
    {
        foreach (var candidate in new[] { Environment.GetEnvironmentVariable("REDIS_SERVER_BIN"), Path.Combine(RepoPaths.Root, "tools", "redis", "redis-server") })
        {
            if (!string.IsNullOrEmpty(candidate) && File.Exists(candidate))
            {
                return candidate;
            }
        }

        // Installs it into tools/redis the way `make bench` does.
        return await RepoPaths.EnsureToolAsync("ensure-redis.sh", cancellationToken);
    }
}
