using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Bridge.Testing;

/// <summary>
/// A real nats-server with JetStream on random loopback ports and its own temp storage; killed and cleaned up
/// on dispose. It can be killed and restarted on the same ports and storage.
/// </summary>
public sealed class NatsServerProcess : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly string _dir;
    private readonly string _binary;
    private readonly string? _config;
    private ChildProcess? _process;

    private NatsServerProcess(string dir, string binary, string? config)
    {
        _dir = dir;
        _binary = binary;
        _config = config;
    }

    public string Url { get; private set; } = "";

    public int Port { get; private set; }

    public Uri MonitorUrl { get; private set; } = null!;

    /// <summary>The WebSocket listener (<c>ws://</c>), when the configuration has one (<see cref="WebSocketConfig"/>); else null.</summary>
    public Uri? WebSocketUrl { get; private set; }

    /// <summary>A configuration adding a WebSocket listener on a random loopback port, without TLS (benchmarks' peer).</summary>
    public const string WebSocketConfig = """
        websocket {
          listen: "127.0.0.1:-1"
          no_tls: true
        }
        """;

    /// <summary>The server's process id (0 while it is not running), for load tests that sample its CPU and memory.</summary>
    public int Pid => _process is { Running: true } p ? p.Pid : 0;

    /// <param name="binary">The nats-server to run; by default <see cref="RepoPaths.NatsServer"/>.</param>
    /// <param name="config">A configuration file's text (e.g. accounts and permissions), given with <c>-c</c>; the
    /// command line's address, ports and storage still apply.</param>
    public static async Task<NatsServerProcess> StartAsync(string? binary = null, string? config = null)
    {
        var dir = Path.Combine(Path.GetTempPath(), "bridge-tests", "nats-" + Guid.NewGuid().ToString("N")[..10]);
        Directory.CreateDirectory(dir);
        string? configPath = null;
        if (config is not null)
        {
            configPath = Path.Combine(dir, "nats.conf");
            await File.WriteAllTextAsync(configPath, config);
        }

        var server = new NatsServerProcess(dir, binary ?? RepoPaths.NatsServer(), configPath);
        await server.LaunchAsync(port: -1, monitorPort: -1);
        return server;
    }

    private async Task LaunchAsync(int port, int monitorPort)
    {
        foreach (var old in Directory.GetFiles(_dir, "*.ports"))
        {
            File.Delete(old);
        }

        string[] args =
        [
            "-a", "127.0.0.1", "-p", port.ToString(CultureInfo.InvariantCulture), "-m", monitorPort.ToString(CultureInfo.InvariantCulture), "-js",
            "-sd", Path.Combine(_dir, "js"), "--ports_file_dir", _dir, .. _config is null ? Array.Empty<string>() : ["-c", _config],
        ];
        if (_process is not null)
        {
            await _process.DisposeAsync();
        }

        _process = ChildProcess.Start("nats-server", _binary, args);

        var deadline = DateTime.UtcNow.AddSeconds(15);
        string? portsFile = null;
        while (DateTime.UtcNow < deadline && (portsFile = Directory.GetFiles(_dir, "*.ports").FirstOrDefault()) is null)
        {
            if (!_process.Running)
            {
                throw new InvalidOperationException($"nats-server exited with {_process.ExitCode}");
            }

            await Task.Delay(20);
        }

        if (portsFile is null)
        {
            throw new TimeoutException("nats-server wrote no ports file");
        }

        JsonNode ports = null!;
        for (var i = 0; i < 50; i++)
        {
            try
            {
                ports = JsonNode.Parse(await File.ReadAllTextAsync(portsFile))!;
                break;
            }
            catch (JsonException)
            {
                await Task.Delay(20); // written but not yet complete
            }
        }

        Url = ports["nats"]![0]!.GetValue<string>();
        Port = new Uri(Url).Port;
        MonitorUrl = new Uri(ports["monitoring"]![0]!.GetValue<string>());
        WebSocketUrl = ports["websocket"]?[0] is { } ws ? new Uri(ws.GetValue<string>()) : null;
        await _process.WaitForHttpAsync(new Uri(MonitorUrl, "/healthz?js-enabled-only=true"), deadline - DateTime.UtcNow);
    }

    /// <summary>Kills the server (SIGKILL) and starts it again on the same ports and storage.</summary>
    public async Task RestartAsync(TimeSpan downtime)
    {
        var port = Port;
        var monitor = MonitorUrl.Port;
        Kill();
        await Task.Delay(downtime);
        await LaunchAsync(port, monitor);
    }

    /// <summary>SIGKILL; <see cref="Pid"/> is 0 until it is started again.</summary>
    public void Kill() => _process?.Kill();

    /// <summary>
    /// Sends the running server a signal with <c>kill</c>: <c>STOP</c> freezes it (its clients' connections stay open and
    /// unanswered until their pings time out), <c>CONT</c> wakes it.
    /// </summary>
    /// <exception cref="InvalidOperationException">The server is not running, or <c>kill</c> failed.</exception>
    public void Signal(string signal)
    {
        var pid = Pid;
        if (pid == 0)
        {
            throw new InvalidOperationException($"nats-server is not running: cannot send it SIG{signal}");
        }

        using var kill = System.Diagnostics.Process.Start("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
        if (kill.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill -{signal} {pid} exited with {kill.ExitCode}");
        }
    }

    public async Task<JsonNode> MonitorAsync(string pathAndQuery) =>
        (await Http.GetFromJsonAsync<JsonNode>(new Uri(MonitorUrl, pathAndQuery)))!;

    /// <summary>Subjects the named client connection (e.g. a worker) is subscribed to, from /connz.</summary>
    public async Task<IReadOnlyList<string>> SubscriptionsOfAsync(string connectionNameContains)
    {
        var connz = await MonitorAsync("/connz?subs=1&limit=1000");
        var conn = connz["connections"]!.AsArray()
            .FirstOrDefault(c => (c!["name"]?.GetValue<string>() ?? "").Contains(connectionNameContains, StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"no connection named like '{connectionNameContains}'");
        return conn["subscriptions_list"]?.AsArray().Select(s => s!.GetValue<string>()).ToList() ?? [];
    }

    /// <summary>Messages the server has sent to the named client connection, from /connz.</summary>
    public async Task<long> OutMsgsOfAsync(string connectionNameContains)
    {
        var connz = await MonitorAsync("/connz?limit=1000");
        var conn = connz["connections"]!.AsArray()
            .First(c => (c!["name"]?.GetValue<string>() ?? "").Contains(connectionNameContains, StringComparison.Ordinal));
        return conn!["out_msgs"]!.GetValue<long>();
    }

    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.DisposeAsync();
        }

        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
