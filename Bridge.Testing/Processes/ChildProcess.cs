using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Bridge.Testing;

/// <summary>Where a <see cref="ChildProcess"/> runs and where its output goes.</summary>
public sealed record ChildProcessOptions
{
    /// <summary>Variables added to (or, when null, removed from) the inherited environment.</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    public string? WorkingDirectory { get; init; }

    /// <summary>Every line the process writes (stdout and stderr) is appended here, after a <c>--- start</c> line per start.</summary>
    public string? LogFile { get; init; }

    /// <summary>Called with each line of standard output; discarded when null (and no <see cref="LogFile"/>).</summary>
    public Action<string>? OnOutput { get; init; }

    /// <summary>Called with each line of standard error; discarded when null (and no <see cref="LogFile"/>).</summary>
    public Action<string>? OnError { get; init; }

    /// <summary>Keeps standard input open for <see cref="ChildProcess.StandardInput"/>.</summary>
    public bool RedirectStandardInput { get; init; }

    /// <summary>A folder of the process's own (storage, configuration), deleted when it is disposed.</summary>
    public string? TempDirectory { get; init; }

    /// <summary>Options that print every line to this process's stderr as <c>[prefix] line</c>.</summary>
    public static ChildProcessOptions Echo(string prefix, bool stdout = true) => new()
    {
        OnOutput = stdout ? line => Console.Error.WriteLine($"[{prefix}] {line}") : null,
        OnError = line => Console.Error.WriteLine($"[{prefix}] {line}"),
    };
}

/// <summary>
/// The one launcher for the processes tests and benchmarks run: nats-server, the worker, nginx, redis, the SignalR
/// peer, the repository's scripts and tools. The program is started directly (its pid is its own, so a signal
/// reaches it and not a shell in between), its output goes line by line to a log file and/or a callback, and it is
/// stopped by its process id only: SIGTERM with a grace period then SIGKILL, or SIGKILL at once. It can be started
/// again with the same command line. Disposing it kills it (with its children) and deletes its temp folder.
/// </summary>
public sealed class ChildProcess : IAsyncDisposable
{
    public const int SigInt = 2;
    public const int SigKill = 9;
    public const int SigTerm = 15;
    public const int SigCont = 18;
    public const int SigStop = 19;

    private readonly string _file;
    private readonly string[] _args;
    private readonly ChildProcessOptions _options;
    private readonly Lock _logLock = new();
    private Process? _process;
    private StreamWriter? _log;

    private ChildProcess(string name, string file, string[] args, ChildProcessOptions options)
    {
        Name = name;
        _file = file;
        _args = args;
        _options = options;
    }

    /// <summary>A short name for messages and log lines (<c>nats-1</c>, <c>worker</c>, <c>redis</c>).</summary>
    public string Name { get; }

    /// <summary>The process id while it runs (or the last one after it exited); 0 before the first start.</summary>
    public int Pid { get; private set; }

    public bool Running => _process is { HasExited: false };

    /// <summary>The exit code once it exited, else null.</summary>
    public int? ExitCode => _process is { HasExited: true } p ? p.ExitCode : null;

    /// <summary>Standard input, when started with <see cref="ChildProcessOptions.RedirectStandardInput"/>.</summary>
    public StreamWriter StandardInput => _process?.StandardInput ?? throw new InvalidOperationException($"{Name} is not running");

    public string? LogFile => _options.LogFile;

    /// <summary>Starts <paramref name="file"/> with <paramref name="args"/>.</summary>
    public static ChildProcess Start(string name, string file, IEnumerable<string> args, ChildProcessOptions? options = null)
    {
        var child = new ChildProcess(name, file, [.. args], options ?? new ChildProcessOptions());
        child.Restart();
        return child;
    }

    /// <summary>
    /// Runs <paramref name="file"/> to its end and returns its exit code and output; kills it and throws
    /// <see cref="TimeoutException"/> when it takes longer than <paramref name="timeout"/>.
    /// </summary>
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(
        string file, IEnumerable<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string?>? environment = null,
        CancellationToken cancellationToken = default)
    {
        string[] list = [.. args];
        var output = new System.Text.StringBuilder();
        var error = new System.Text.StringBuilder();
        await using var run = Start(Path.GetFileName(file), file, list, new ChildProcessOptions
        {
            Environment = environment,
            OnOutput = line => { lock (output) { output.AppendLine(line); } },
            OnError = line => { lock (error) { error.AppendLine(line); } },
        });
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        int code;
        try
        {
            code = await run.WaitForExitAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"{Path.GetFileName(file)} {string.Join(' ', list)} did not finish within {timeout}");
        }

        lock (output)
        {
            lock (error)
            {
                return (code, output.ToString(), error.ToString());
            }
        }
    }

    /// <summary>Starts the process again with the same command line; throws when it is still running.</summary>
    public void Restart()
    {
        if (Running)
        {
            throw new InvalidOperationException($"{Name} is already running");
        }

        _process?.Dispose();
        var psi = new ProcessStartInfo(_file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = _options.RedirectStandardInput,
        };
        if (_options.WorkingDirectory is not null)
        {
            psi.WorkingDirectory = _options.WorkingDirectory;
        }

        foreach (var arg in _args)
        {
            psi.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in _options.Environment ?? new Dictionary<string, string?>())
        {
            psi.Environment[key] = value;
        }

        WriteLog($"--- start {DateTime.UtcNow:O}");
        var process = Process.Start(psi) ?? throw new InvalidOperationException($"{Name} did not start");
        process.OutputDataReceived += (_, e) => OnLine(e.Data, _options.OnOutput);
        process.ErrorDataReceived += (_, e) => OnLine(e.Data, _options.OnError);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        _process = process;
        Pid = process.Id;
    }

    private void OnLine(string? line, Action<string>? sink)
    {
        if (line is null)
        {
            return;
        }

        WriteLog(line);
        sink?.Invoke(line);
    }

    private void WriteLog(string line)
    {
        if (_options.LogFile is null)
        {
            return;
        }

        lock (_logLock)
        {
            _log ??= new StreamWriter(new FileStream(_options.LogFile, FileMode.Append, FileAccess.Write, FileShare.ReadWrite)) { AutoFlush = true };
            _log.WriteLine(line);
        }
    }

    /// <summary>SIGKILL (with its children): the process dies at once, nothing is flushed or closed.</summary>
    public async Task KillAsync()
    {
        if (_process is { HasExited: false } p)
        {
            KillTree(p);
            await p.WaitForExitAsync();
        }
    }

    /// <summary>As <see cref="KillAsync"/>, waiting at most 5 s for the exit.</summary>
    public void Kill()
    {
        if (_process is { HasExited: false } p)
        {
            KillTree(p);
            p.WaitForExit(5000);
        }
    }

    /// <summary>SIGTERM (what an orchestrator sends), then waits for the exit; SIGKILL when it takes longer than <paramref name="grace"/>.</summary>
    /// <returns>How long the process took to exit, and whether it had to be killed.</returns>
    public async Task<(TimeSpan Took, bool Killed)> StopAsync(TimeSpan grace)
    {
        if (_process is not { HasExited: false } p)
        {
            return (TimeSpan.Zero, false);
        }

        var sw = Stopwatch.StartNew();
        Signal(p.Id, SigTerm);
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

    /// <summary>Sends <paramref name="signal"/> (e.g. <see cref="SigStop"/>) to the running process.</summary>
    public void Signal(int signal)
    {
        if (_process is { HasExited: false } p)
        {
            Signal(p.Id, signal);
        }
    }

    /// <summary>Waits for the process to exit and returns its exit code.</summary>
    public async Task<int> WaitForExitAsync(CancellationToken cancellationToken = default)
    {
        var p = _process ?? throw new InvalidOperationException($"{Name} was never started");
        await p.WaitForExitAsync(cancellationToken);
        return p.ExitCode;
    }

    /// <summary>
    /// Polls <paramref name="ready"/> (its network errors count as "not yet") until it says yes. Throws
    /// <see cref="InvalidOperationException"/> with the end of the log when the process exits first, and
    /// <see cref="TimeoutException"/> when <paramref name="timeout"/> passes.
    /// </summary>
    public async Task WaitUntilAsync(Func<CancellationToken, Task<bool>> ready, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed < timeout)
        {
            if (!Running)
            {
                throw new InvalidOperationException($"{Name} exited with {ExitCode}{Tail()}");
            }

            try
            {
                if (await ready(cancellationToken))
                {
                    return;
                }
            }
            catch (Exception ex) when (ex is HttpRequestException or SocketException or IOException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
            }

            await Task.Delay(100, cancellationToken);
        }

        throw new TimeoutException($"{Name} was not ready within {timeout.TotalSeconds:N0} s{Tail()}");
    }

    /// <summary>
    /// Runs <paramref name="ready"/> (a wait for the process to be ready) and returns the process; when the wait
    /// throws, the process is killed and cleaned up before the exception goes on.
    /// </summary>
    public async Task<ChildProcess> ReadyOrDisposedAsync(Func<ChildProcess, Task> ready)
    {
        try
        {
            await ready(this);
            return this;
        }
        catch
        {
            await DisposeAsync();
            throw;
        }
    }

    /// <summary>Waits until <paramref name="url"/> answers with a success status (see <see cref="WaitUntilAsync"/>).</summary>
    public Task WaitForHttpAsync(Uri url, TimeSpan timeout, CancellationToken cancellationToken = default) =>
        WaitUntilAsync(async ct => await IsOkAsync(url, ct), timeout, cancellationToken);

    /// <summary>True when <paramref name="url"/> answers with a success status within 3 s; false on any network error.</summary>
    public static async Task<bool> IsOkAsync(Uri url, CancellationToken cancellationToken = default)
    {
        try
        {
            using var response = await Probe.GetAsync(url, cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
        {
            return false;
        }
    }

    private static readonly HttpClient Probe = new() { Timeout = TimeSpan.FromSeconds(3) };

    /// <summary>The last <paramref name="lines"/> lines of <see cref="ChildProcessOptions.LogFile"/> ("" without one).</summary>
    public string LogTail(int lines = 30)
    {
        if (_options.LogFile is null)
        {
            return "";
        }

        try
        {
            using var reader = new StreamReader(new FileStream(_options.LogFile, FileMode.Open, FileAccess.Read, FileShare.ReadWrite));
            var all = reader.ReadToEnd().Split(System.Environment.NewLine);
            return string.Join(System.Environment.NewLine, all.SkipLast(1).TakeLast(lines));
        }
        catch (IOException)
        {
            return "";
        }
    }

    private string Tail() => LogTail() is { Length: > 0 } tail ? $":{System.Environment.NewLine}{tail}" : "";

    /// <summary>Resident memory of the process, from /proc (<see cref="IOException"/> once it has exited).</summary>
    public long RssBytes() => ProcessStats.RssBytes(Pid);

    /// <summary>CPU time (user + system) the process has used, from /proc.</summary>
    public TimeSpan CpuTime() => ProcessStats.CpuTime(Pid);

    /// <summary>A loopback port nothing listens on right now.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Sends <paramref name="signal"/> to the process <paramref name="pid"/> (by its id only).</summary>
    public static void Signal(int pid, int signal)
    {
        if (SendSignal(pid, signal) != 0)
        {
            throw new InvalidOperationException($"kill({pid}, {signal}) failed: errno {Marshal.GetLastPInvokeError().ToString(CultureInfo.InvariantCulture)}");
        }
    }

    private static void KillTree(Process process)
    {
        try
        {
            // By process id: the process and the children it started (nginx's workers), found through /proc.
            process.Kill(entireProcessTree: true);
        }
        catch (InvalidOperationException)
        {
            // Exited meanwhile.
        }
    }

    public async ValueTask DisposeAsync()
    {
        await KillAsync();
        _process?.Dispose();
        lock (_logLock)
        {
            _log?.Dispose();
            _log = null;
        }

        if (_options.TempDirectory is { } dir)
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
            }
        }
    }

    // .NET sends only SIGKILL (Process.Kill); an orderly stop (what Kubernetes and systemd send) needs SIGTERM.
    // DllImport rather than LibraryImport: blittable arguments need no marshalling, and no unsafe code.
    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static extern int SendSignal(int pid, int signal);
}

/// <summary>CPU and memory of a process, from /proc.</summary>
public static class ProcessStats
{
    public static long RssBytes(int pid)
    {
        foreach (var line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    public static TimeSpan CpuTime(int pid)
    {
        // Fields 14 and 15 of /proc/<pid>/stat: utime and stime in clock ticks (100 Hz on Linux).
        var stat = File.ReadAllText($"/proc/{pid}/stat");
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        var ticks = long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture);
        return TimeSpan.FromSeconds(ticks / 100.0);
    }
}
