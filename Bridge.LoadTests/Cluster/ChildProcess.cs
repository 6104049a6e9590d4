using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Bridge.LoadTests.Cluster;

/// <summary>
/// One process of the local cluster (nats-server, worker, nginx), started through <c>exec</c> so that its pid is
/// the program's own and its output goes straight to a log file. It can be sent SIGTERM or SIGKILL like an
/// orchestrator would, and started again with the same command line.
/// </summary>
internal sealed class ChildProcess(string name, string logFile, IReadOnlyDictionary<string, string> environment, params string[] command)
{
    private const int SigTerm = 15;
    private const int SigKill = 9;

    private Process? _process;

    public string Name { get; } = name;

    public string LogFile { get; } = logFile;

    public bool Running => _process is { HasExited: false };

    public void Start()
    {
        if (Running)
        {
            throw new InvalidOperationException($"{Name} is already running");
        }

        _process?.Dispose();
        var psi = new ProcessStartInfo("/bin/bash") { UseShellExecute = false };
        // exec: the pid is the program's, so signals reach it and not a shell in between.
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add("exec \"$@\" >>\"$BRIDGE_CLUSTER_LOG\" 2>&1");
        psi.ArgumentList.Add(Name);
        foreach (var part in command)
        {
            psi.ArgumentList.Add(part);
        }

        psi.Environment["BRIDGE_CLUSTER_LOG"] = LogFile;
        foreach (var (key, value) in environment)
        {
            psi.Environment[key] = value;
        }

        File.AppendAllText(LogFile, $"--- start {DateTime.UtcNow:O}{Environment.NewLine}");
        _process = Process.Start(psi) ?? throw new InvalidOperationException($"{Name} did not start");
    }

    /// <summary>SIGKILL: the process dies at once, nothing is flushed or closed.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } p)
        {
            _ = Signal(p.Id, SigKill);
            await p.WaitForExitAsync();
        }
    }

    /// <summary>SIGTERM, then waits for the exit; SIGKILL when it takes longer than <paramref name="grace"/>.</summary>
    /// <returns>How long the process took to exit, and whether it had to be killed.</returns>
    public async Task<(TimeSpan Took, bool Killed)> StopAsync(TimeSpan grace)
    {
        if (_process is not { HasExited: false } p)
        {
            return (TimeSpan.Zero, false);
        }

        var sw = Stopwatch.StartNew();
        _ = Signal(p.Id, SigTerm);
        using var timeout = new CancellationTokenSource(grace);
        try
        {
            await p.WaitForExitAsync(timeout.Token);
            return (sw.Elapsed, false);
        }
        catch (OperationCanceledException)
        {
            await KillAsync();
            return (sw.Elapsed, true);
        }
    }

    public string LogTail(int lines = 30)
    {
        try
        {
            var all = File.ReadAllLines(LogFile);
            return string.Join(Environment.NewLine, all.Skip(Math.Max(0, all.Length - lines)));
        }
        catch (IOException)
        {
            return "";
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    // .NET sends only SIGKILL (Process.Kill); an orderly stop (what Kubernetes and systemd send) needs SIGTERM.
    // DllImport rather than LibraryImport: blittable arguments need no marshalling, and no unsafe code.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int Signal(int pid, int signal);
}
