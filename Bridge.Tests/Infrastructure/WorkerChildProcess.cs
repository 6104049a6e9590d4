using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Bridge.Testing;

namespace Bridge.Tests.Infrastructure;

/// <summary>The real worker as a separate process (the build the tests depend on), for tests that SIGKILL it.</summary>
public sealed class WorkerChildProcess : IAsyncDisposable
{
    private readonly Process _process;

    private WorkerChildProcess(Process process, Uri httpUrl)
    {
        _process = process;
        HttpUrl = httpUrl;
    }

    public Uri HttpUrl { get; }

    public Uri WebSocketUrl => new($"ws://{HttpUrl.Authority}/ws");

    /// <summary>The tests' own configuration: Debug locally, Release under make test.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";

    /// <summary>The worker built with the tests' configuration.</summary>
    public static string Dll => Built("Bridge.Worker");

    /// <summary>The main assembly of a project of the solution, built with the tests' configuration.</summary>
    public static string Built(string project)
    {
        var dll = Path.Combine(RepoPaths.Root, project, "bin", Configuration, "net10.0", project + ".dll");
        return File.Exists(dll) ? dll : throw new InvalidOperationException($"{dll} not found: build {project} in {Configuration} first");
    }

    public static async Task<WorkerChildProcess> StartAsync(NatsServerProcess nats, params (string Key, string Value)[] settings)
    {
        var dll = Dll;

        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var psi = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add(dll);
        psi.ArgumentList.Add($"--urls=http://127.0.0.1:{port}");
        psi.ArgumentList.Add($"--Bridge:Nats:Url={nats.Url}");
        psi.ArgumentList.Add($"--Bridge:Worker:Id=child-{Guid.NewGuid():N}"[..40]);
        psi.ArgumentList.Add("--Logging:LogLevel:Default=Warning");
        foreach (var (key, value) in settings)
        {
            psi.ArgumentList.Add($"--{key}={value}");
        }

        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var url = new Uri($"http://127.0.0.1:{port}");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (DateTime.UtcNow < deadline && !process.HasExited)
        {
            try
            {
                using var ready = await http.GetAsync(new Uri(url, "/readyz"));
                if (ready.IsSuccessStatusCode)
                {
                    return new WorkerChildProcess(process, url);
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
            {
            }

            await Task.Delay(100);
        }

        process.Kill(entireProcessTree: true);
        throw new InvalidOperationException($"the worker process did not become ready (exited: {process.HasExited})");
    }

    /// <summary>SIGKILL: no shutdown, no clean-up, nothing released.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            await KillAsync();
        }

        _process.Dispose();
    }
}
