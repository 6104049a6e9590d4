namespace Bridge.Tests.Infrastructure;

/// <summary>
/// A command of the repository (a script, the CLI, the load harness) run as its own process with its output
/// collected line by line (stdout and stderr together), so a test can wait for a line, signal it and read its
/// exit code. Started through <see cref="ChildProcess"/>; killed with its process tree on dispose.
/// </summary>
public sealed class ChildRun : IAsyncDisposable
{
    private readonly List<string> _lines = [];
    private ChildProcess _process = null!;

    private ChildRun()
    {
    }

    public int Pid => _process.Pid;

    public bool HasExited => !_process.Running;

    public string Output
    {
        get
        {
            lock (_lines)
            {
                return string.Join('\n', _lines);
            }
        }
    }

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_lines)
            {
                return [.. _lines];
            }
        }
    }

    /// <summary>Starts <paramref name="file"/> with <paramref name="args"/> in the repository root.</summary>
    public static ChildRun Start(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null, string? workingDirectory = null)
    {
        var env = new Dictionary<string, string?> { ["NATS_SERVER_BIN"] = RepoPaths.NatsServer() };
        foreach (var (key, value) in environment ?? new Dictionary<string, string?>())
        {
            env[key] = value;
        }

        var run = new ChildRun();
        run._process = ChildProcess.Start(Path.GetFileName(file), file, args, new ChildProcessOptions
        {
            Environment = env,
            WorkingDirectory = workingDirectory ?? RepoPaths.Root,
            RedirectStandardInput = true,
            OnOutput = run.Add,
            OnError = run.Add,
        });
        return run;
    }

    /// <summary>Runs to the end (at most <paramref name="timeout"/>) and returns the exit code.</summary>
    public static async Task<(int ExitCode, string Output)> RunAsync(string file, IEnumerable<string> args, TimeSpan timeout, IReadOnlyDictionary<string, string?>? environment = null, string? stdin = null)
    {
        await using var run = Start(file, args, environment);
        if (stdin is not null)
        {
            await run._process.StandardInput.WriteAsync(stdin);
        }

        run._process.StandardInput.Close();
        var code = await run.WaitForExitAsync(timeout);
        return (code, run.Output);
    }

    private void Add(string line)
    {
        lock (_lines)
        {
            _lines.Add(line);
        }
    }

    /// <summary>Waits for a line matching <paramref name="match"/>; fails with the output so far if the process exits first or time runs out.</summary>
    public async Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            if (Lines.FirstOrDefault(match) is { } line)
            {
                return line;
            }

            if (HasExited && Lines.FirstOrDefault(match) is null)
            {
                Assert.Fail($"exited with {_process.ExitCode} before the expected line; output:\n{Output}");
            }

            if (DateTime.UtcNow > deadline)
            {
                Assert.Fail($"no expected line within {timeout.TotalSeconds:N0} s; output:\n{Output}");
            }

            await Task.Delay(50);
        }
    }

    public async Task<int> WaitForExitAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            return await _process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            Assert.Fail($"still running after {timeout.TotalSeconds:N0} s; output:\n{Output}");
            throw;
        }
    }

    /// <summary>Sends a signal (e.g. INT, as Ctrl-C in a terminal does to the script).</summary>
    public Task SignalAsync(string signal) => Signal(_process.Pid, signal);

    /// <summary>Sends the signal named <paramref name="signal"/> (INT, TERM, KILL, STOP, CONT, HUP) to <paramref name="pid"/>.</summary>
    public static Task Signal(int pid, string signal)
    {
        ChildProcess.Signal(pid, signal switch
        {
            "HUP" => 1,
            "INT" => ChildProcess.SigInt,
            "KILL" => ChildProcess.SigKill,
            "TERM" => ChildProcess.SigTerm,
            "CONT" => ChildProcess.SigCont,
            "STOP" => ChildProcess.SigStop,
            _ => throw new ArgumentException($"unknown signal {signal}", nameof(signal)),
        });
        return Task.CompletedTask;
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();

    /// <summary>A loopback port nothing listens on right now.</summary>
    public static int FreePort() => ChildProcess.FreePort();

    /// <summary>The id of the process whose command line contains every one of <paramref name="parts"/>, if any.</summary>
    public static int? FindProcess(params string[] parts)
    {
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid))
            {
                continue;
            }

            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (parts.All(p => cmdline.Contains(p, StringComparison.Ordinal)))
                {
                    return pid;
                }
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }

        return null;
    }

    /// <summary>True while the process exists and is not a zombie.</summary>
    public static bool IsAlive(int pid)
    {
        try
        {
            return !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }
}
