using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Bridge.Testing;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>The real worker as its own process on a free loopback port, so its CPU and memory can be sampled alone.</summary>
internal sealed class WorkerProcess : IAsyncDisposable
{
    private readonly Process _process;

    private WorkerProcess(Process process, Uri httpUrl, string id)
    {
        _process = process;
        HttpUrl = httpUrl;
        Id = id;
    }

    /// <summary>
    /// Set on every worker the harness starts (command-line settings override them): tokens are required and
    /// checked against <see cref="BenchTokens.Secret"/>; connection and message-rate limits, which protect a
    /// worker from one abusive client, are off because every load client here shares one IP and one user.
    /// A worker without the auth feature ignores all of these, so the scenarios run either way.
    /// </summary>
    public static IReadOnlyDictionary<string, string> BenchEnvironment { get; } = new Dictionary<string, string>
    {
        ["Bridge__Auth__HmacSecret"] = BenchTokens.Secret,
        ["Bridge__Auth__AllowAnonymous"] = "false",
        ["Bridge__Limits__MaxConnectionsPerUser"] = "0",
        ["Bridge__Limits__MaxConnectionsPerIp"] = "0",
        ["Bridge__Limits__MaxConnections"] = "0",
        ["Bridge__Limits__MessagesPerSecond"] = "1000000",
        ["Bridge__Limits__MessageBurst"] = "1000000",
    };

    public Uri HttpUrl { get; }

    public Uri WebSocketUrl => new($"ws://{HttpUrl.Authority}/ws");

    public string Id { get; }

    public int Pid => _process.Id;

    public static Task<WorkerProcess> StartAsync(string natsUrl, string configuration, params (string Key, string Value)[] settings) =>
        StartDllAsync(natsUrl, Path.Combine(RepoPaths.Root, "Bridge.Worker", "bin", configuration, "net10.0", "Bridge.Worker.dll"), settings);

    /// <summary>A worker from another build (e.g. main's, for an A/B in one run): <paramref name="dll"/> is its Bridge.Worker.dll.</summary>
    public static async Task<WorkerProcess> StartDllAsync(string natsUrl, string dll, params (string Key, string Value)[] settings)
    {
        if (!File.Exists(dll))
        {
            throw new InvalidOperationException($"{dll} not found; build the solution (Release) first.");
        }

        var port = FreePort();
        var id = "bench-" + Guid.NewGuid().ToString("N")[..6];
        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add($"--urls=http://127.0.0.1:{port}");
        psi.ArgumentList.Add($"--Bridge:Nats:Url={natsUrl}");
        psi.ArgumentList.Add($"--Bridge:Worker:Id={id}");
        psi.ArgumentList.Add("--Logging:LogLevel:Default=Warning");
        foreach (var (key, value) in BenchEnvironment)
        {
            psi.Environment[key] = value;
        }

        foreach (var (key, value) in settings)
        {
            psi.ArgumentList.Add($"--{key}={value}");
        }

        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"[worker] {e.Data}"); };
        process.ErrorDataReceived += (_, e) => { if (e.Data is not null) Console.Error.WriteLine($"[worker] {e.Data}"); };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();

        var url = new Uri($"http://127.0.0.1:{port}");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                throw new InvalidOperationException($"worker exited with {process.ExitCode}");
            }

            try
            {
                if ((await http.GetAsync(new Uri(url, "/healthz"))).IsSuccessStatusCode)
                {
                    return new WorkerProcess(process, url, id);
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        process.Kill(true);
        throw new TimeoutException("worker did not become healthy");
    }

    /// <summary>Resident memory of the worker, from /proc.</summary>
    public long RssBytes() => ProcessStats.RssBytes(_process.Id);

    public TimeSpan CpuTime() => ProcessStats.CpuTime(_process.Id);

    /// <summary>The sum of every series of one of the worker's metrics on <c>/metrics</c> (Prometheus names, e.g. <c>bridge_catchups_total</c>).</summary>
    public async Task<double> MetricAsync(string name, CancellationToken cancellationToken)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var text = await http.GetStringAsync(new Uri(HttpUrl, "/metrics"), cancellationToken);
        var total = 0.0;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && line.Length > name.Length && line[name.Length] is ' ' or '{')
            {
                total += double.Parse(line[(line.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture);
            }
        }

        return total;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }

        _process.Dispose();
    }
}

internal static class ProcessStats
{
    public static long RssBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) * 1024;
            }
        }

        return 0;
    }

    public static TimeSpan CpuTime(int pid)
    {
        // Fields 14 and 15 of /proc/<pid>/stat: utime and stime in clock ticks (100 Hz on Linux).
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11]) + long.Parse(fields[12]);
        return TimeSpan.FromSeconds(ticks / 100.0);
    }
}
