using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Scripts;

/// <summary>
/// <c>scripts/run.sh</c> (<c>make run</c>) as a new user meets it: the real script, the real nats-server and the
/// worker build of these tests, on free loopback ports (never 8080) and a temp data folder.
/// </summary>
public sealed class RunScriptTests : IDisposable
{
    private static readonly TimeSpan StartLimit = TimeSpan.FromSeconds(90);
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(5) };

    private readonly string _data = Path.Combine(Path.GetTempPath(), "bridge-tests", "run-" + Guid.NewGuid().ToString("N")[..8]);
    // A data folder whose name has a quote and glob characters (the shell and find -lname read them as syntax).
    private string Odd => Path.Combine(_data, "it's [1]*");
    private readonly int _natsPort = ChildRun.FreePort();
    private readonly int _monitorPort = ChildRun.FreePort();
    private readonly int _workerPort = ChildRun.FreePort();

    private Dictionary<string, string?> Environment(string workerVariable = "WORKER_URL") => new()
    {
        [workerVariable] = $"http://127.0.0.1:{_workerPort}",
        ["NATS_PORT"] = _natsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["NATS_MONITOR_PORT"] = _monitorPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["BRIDGE_DATA"] = _data,
        ["BRIDGE_WORKER_DLL"] = WorkerChildProcess.Dll,
    };

    private static ChildRun Run(Dictionary<string, string?> environment) =>
        ChildRun.Start("bash", [Path.Combine(RepoPaths.Root, "scripts", "run.sh")], environment);

    /// <summary>
    /// A process that is no run's holds <paramref name="folder"/>'s run.lock until killed (<c>flock -o</c>: flock itself
    /// holds it, its command, sleep, does not); returned once the lock is taken.
    /// </summary>
    private static async Task<System.Diagnostics.Process> HoldLockAsync(string folder)
    {
        var holder = System.Diagnostics.Process.Start("flock", ["-o", Path.Combine(folder, "run.lock"), "sleep", "120"])!;
        await Eventually.TrueAsync(
            async () => (await ChildRun.RunAsync("flock", ["-n", Path.Combine(folder, "run.lock"), "true"], TimeSpan.FromSeconds(10))).ExitCode != 0,
            TimeSpan.FromSeconds(10), "the holder takes the lock");
        return holder;
    }

    /// <summary>A run refused at once, in one line naming <paramref name="holder"/> of <paramref name="folder"/>'s lock.</summary>
    private static async Task AssertRefusedByForeignHolderAsync(Dictionary<string, string?> environment, string folder, System.Diagnostics.Process holder)
    {
        await using var run = Run(environment);
        Assert.Equal(1, await run.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(
            $"run.sh: {Path.Combine(folder, "run.lock")} is locked, and no run's nats-server or worker holds it: pid {holder.Id} (flock). " +
            "Stop what holds it, or give this one its own BRIDGE_DATA",
            Assert.Single(run.Lines));
    }

    /// <summary>
    /// A run whose worker keeps a connection's drain open for <paramref name="closeTimeout"/> (<c>CloseTimeout</c>: a
    /// client that does not answer the worker's close holds it that long), once it says it is running.
    /// </summary>
    private async Task<ChildRun> StartRunAsync(TimeSpan closeTimeout, string workerVariable = "WORKER_URL")
    {
        var environment = Environment(workerVariable);
        environment["Bridge__Connections__CloseTimeout"] = closeTimeout.ToString("c", System.Globalization.CultureInfo.InvariantCulture);
        var run = Run(environment);
        try
        {
            await run.WaitForLineAsync(l => l == "Bridge is running.", StartLimit);
            return run;
        }
        catch
        {
            await run.DisposeAsync();
            throw;
        }
    }

    [Fact]
    public async Task Run_says_running_once_its_worker_answers_on_ASPNETCORE_URLS_and_ctrl_c_stops_the_worker_before_nats()
    {
        // The worker resets a socket whose close is not answered after CloseTimeout, and a reset discards a close
        // frame the client has not read yet: on a loaded machine the 5 s default can pass before this test's reader
        // runs. A longer timeout keeps the drain open for the reader; the client aborts once it has read the close.
        await using var run = await StartRunAsync(TimeSpan.FromSeconds(15), "ASPNETCORE_URLS");
        var url = new Uri($"http://127.0.0.1:{_workerPort}");

        // By the time it says so, its worker answers at the address it prints.
        Assert.Equal("ok", await Http.GetStringAsync(new Uri(url, "/healthz")));
        Assert.Contains(run.Lines, l => l.StartsWith($"  WebSocket    ws://127.0.0.1:{_workerPort}/ws ", StringComparison.Ordinal));
        var worker = ChildRun.FindProcess("Bridge.Worker.dll", $"--urls http://127.0.0.1:{_workerPort}");
        var nats = ChildRun.FindProcess("nats-server", $"-p {_natsPort}");
        Assert.NotNull(worker);
        Assert.NotNull(nats);

        // A client that does not answer the worker's close keeps the drain open (CloseTimeout): if nats-server were
        // stopped at the same time as the worker, it would be gone long before the worker.
        // It reads (so the worker's close frame is taken in before the worker gives up and resets the connection) but
        // never answers the close.
        using var client = new ClientWebSocket();
        await client.ConnectAsync(new Uri($"ws://127.0.0.1:{_workerPort}/ws"), CancellationToken.None);
        var closed = Task.Run(async () =>
        {
            var buffer = new byte[4096];
            WebSocketReceiveResult r;
            do
            {
                r = await client.ReceiveAsync(buffer, CancellationToken.None); // welcome first
            }
            while (r.MessageType != WebSocketMessageType.Close);
            await Task.Delay(500); // the worker stays in its drain a little longer, then sees the connection go
            client.Abort();
            return r.CloseStatus;
        });
        await run.SignalAsync("INT");

        var natsAliveWhileWorkerRan = true;
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (ChildRun.IsAlive(worker.Value) && DateTime.UtcNow < deadline)
        {
            natsAliveWhileWorkerRan &= ChildRun.IsAlive(nats.Value);
            await Task.Delay(20);
        }

        Assert.False(ChildRun.IsAlive(worker.Value), "the worker did not stop");
        Assert.True(natsAliveWhileWorkerRan, "nats-server stopped while the worker was still draining");
        Assert.Equal(0, await run.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.False(ChildRun.IsAlive(nats.Value), "nats-server is still running");

        // The drain reached the client: it was told to reconnect (1012), not dropped.
        Assert.Equal((WebSocketCloseStatus)CloseCodes.ServiceRestart, await closed.WaitAsync(TimeSpan.FromSeconds(10)));
        var output = run.Output;
        Assert.True(output.IndexOf("stopping the worker", StringComparison.Ordinal) < output.IndexOf("stopping nats-server", StringComparison.Ordinal), output);
    }

    // The checkout as run.sh prints it (pwd -P; the test checkout has no symbolic link on its path).
    private static string Checkout => Path.TrimEndingDirectorySeparator(Path.GetFullPath(RepoPaths.Root));

    // A word in single quotes, as run.sh quotes the paths of its recipe: each ' as '\''.
    private static string Quote(string word) => "'" + word.Replace("'", "'\\''", StringComparison.Ordinal) + "'";

    // The stop recipe: SIGTERM to the pid in the pidfile only if it is exactly this checkout's run.sh.
    private static string RecipeFor(string pidfile, string checkout) =>
        $"pid=$(cat {pidfile}) && [ \"$(readlink /proc/$pid/cwd)\" = {checkout} ] && tr '\\0' ' ' </proc/$pid/cmdline | grep -Eqx '([^ ]*/)?bash ([^ ]*/)?run\\.sh ' && kill \"$pid\"";

    private static string ReadmeRecipe => Docs.ReadmeExampleTests.Code("stop-background-run").Trim();

    // The recipe a run prints for stopping it in the background (the README's, with this run's pidfile).
    private static string Recipe(ChildRun run)
    {
        var lines = run.Lines.ToList();
        var at = lines.FindIndex(l => l.EndsWith("In the background:", StringComparison.Ordinal));
        Assert.True(at >= 0 && at + 1 < lines.Count, run.Output);
        return lines[at + 1].Trim();
    }

    [Fact]
    public async Task A_run_keeps_its_pid_until_it_has_ended_and_the_readme_recipe_stops_that_run()
    {
        // The README's recipe for a run in the background, with this run's data folder: it signals this checkout's
        // run.sh (not every run.sh on the machine, as `pgrep -f scripts/run.sh` did).
        // A client that never answers the worker's close keeps the drain open (CloseTimeout) while the test looks.
        await using var run = await StartRunAsync(TimeSpan.FromSeconds(10));
        var pidfile = Path.Combine(_data, "run.pid");
        Assert.Equal(run.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture), File.ReadAllText(pidfile).Trim());
        var recipe = Recipe(run);
        Assert.Equal(RecipeFor(Quote(pidfile), Quote(Checkout)), recipe);
        // README example stop-background-run is this recipe for the default data folder, run from the checkout.
        Assert.Equal(RecipeFor(".data/run.pid", "\"$(pwd -P)\""), ReadmeRecipe);
        var nats = ChildRun.FindProcess("nats-server", $"-p {_natsPort}");
        Assert.NotNull(nats);
        using var client = new ClientWebSocket();
        await client.ConnectAsync(new Uri($"ws://127.0.0.1:{_workerPort}/ws"), CancellationToken.None);

        var (code, output) = await ChildRun.RunAsync("bash", ["-c", recipe], TimeSpan.FromSeconds(10));
        Assert.True(code == 0, output);
        // Stopping is not stopped: the pidfile stays while the worker drains (a script waiting for it to go would
        // take the ports for free too early), and the same recipe again changes nothing.
        await run.WaitForLineAsync(l => l == "run.sh: stopping the worker (it drains its connections)...", TimeSpan.FromSeconds(30));
        Assert.True(File.Exists(pidfile), "the pid file went before the run ended");
        (code, output) = await ChildRun.RunAsync("bash", ["-c", recipe], TimeSpan.FromSeconds(10));
        Assert.True(code == 0, output);

        Assert.Equal(0, await run.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(run.Lines, l => l == "run.sh: stopped.");
        Assert.False(ChildRun.IsAlive(nats.Value), "nats-server is still running");
        Assert.False(File.Exists(pidfile), "the pid file outlived its run");
        client.Abort();
    }

    [Fact]
    public async Task A_stale_pidfile_signals_nothing_and_a_second_run_of_the_same_data_folder_is_refused_before_the_port_checks()
    {
        // A run killed without its EXIT trap (kill -9, a crash) leaves its pidfile; its pid may be another process
        // by now, even one whose command line names scripts/run.sh in this checkout. The README's recipe (run from
        // the checkout) leaves that process alone, and the next run replaces the file.
        Directory.CreateDirectory(_data);
        var pidfile = Path.Combine(_data, "run.pid");
        using var other = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("tail", ["-f", "scripts/run.sh"])
        {
            WorkingDirectory = RepoPaths.Root,
            RedirectStandardOutput = true,
        })!;
        try
        {
            await File.WriteAllTextAsync(pidfile, other.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) + "\n");
            var readme = ReadmeRecipe.Replace(".data/run.pid", $"'{pidfile}'", StringComparison.Ordinal);
            var (code, _) = await ChildRun.RunAsync("bash", ["-c", readme], TimeSpan.FromSeconds(10));
            Assert.NotEqual(0, code);
            Assert.False(other.HasExited, "the recipe signalled a process that is no run.sh");

            await using var run = Run(Environment());
            await run.WaitForLineAsync(l => l == "Bridge is running.", StartLimit);
            var runPid = run.Pid.ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.Equal(runPid, File.ReadAllText(pidfile).Trim());
            var another = $"run.sh: another run of this checkout is going (pid {runPid}, {pidfile}). Stop it first: kill {runPid}, or give this one its own BRIDGE_DATA";

            // A second run of the same data folder would share JetStream's store: refused, and the first run's
            // pidfile is left as it is. On the same ports, that is what it is told (not that a port is taken).
            await using (var refused = Run(Environment()))
            {
                Assert.Equal(1, await refused.WaitForExitAsync(TimeSpan.FromSeconds(30)));
                Assert.Equal(another, Assert.Single(refused.Lines));
            }

            // On other ports, the same.
            var second = Environment();
            second["WORKER_URL"] = $"http://127.0.0.1:{ChildRun.FreePort()}";
            second["NATS_PORT"] = ChildRun.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
            second["NATS_MONITOR_PORT"] = ChildRun.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
            await using (var refused = Run(second))
            {
                Assert.Equal(1, await refused.WaitForExitAsync(TimeSpan.FromSeconds(30)));
                Assert.Equal(another, Assert.Single(refused.Lines));
            }

            Assert.Equal(runPid, File.ReadAllText(pidfile).Trim());
            (code, var output) = await ChildRun.RunAsync("bash", ["-c", Recipe(run)], TimeSpan.FromSeconds(10));
            Assert.True(code == 0, output);
            Assert.Equal(0, await run.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.False(File.Exists(pidfile), "the pid file outlived its run");
            Assert.False(other.HasExited, "a run signalled the process of a stale pidfile");
        }
        finally
        {
            other.Kill();
        }
    }

    [Fact]
    public async Task A_killed_run_takes_its_nats_server_and_worker_along_and_no_run_starts_on_its_data_while_they_live()
    {
        // A client that never answers the worker's close keeps the worker's drain open (CloseTimeout) after the kill.
        await using var run = await StartRunAsync(TimeSpan.FromSeconds(15));
        var worker = ChildRun.FindProcess("Bridge.Worker.dll", $"--urls http://127.0.0.1:{_workerPort}");
        var nats = ChildRun.FindProcess("nats-server", $"-p {_natsPort}");
        Assert.NotNull(worker);
        Assert.NotNull(nats);
        var log = Path.Combine(_data, "nats-server.log");
        try
        {
            using var client = new ClientWebSocket();
            await client.ConnectAsync(new Uri($"ws://127.0.0.1:{_workerPort}/ws"), CancellationToken.None);
            var reader = Task.Run(async () =>
            {
                var buffer = new byte[4096];
                while ((await client.ReceiveAsync(buffer, CancellationToken.None)).MessageType != WebSocketMessageType.Close)
                {
                }
            });

            // (Its output stays open while its children live: the script is gone when it is no process or a zombie.)
            await run.SignalAsync("KILL");
            await Eventually.TrueAsync(() => !ChildRun.IsAlive(run.Pid), TimeSpan.FromSeconds(10), "run.sh dies");

            // While the worker drains, a run on the same data folder (other ports) is refused, naming it; the
            // nats-server log (the earlier run's) is not truncated.
            var second = Environment();
            second["WORKER_URL"] = $"http://127.0.0.1:{ChildRun.FreePort()}";
            second["NATS_PORT"] = ChildRun.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
            second["NATS_MONITOR_PORT"] = ChildRun.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
            Assert.True(ChildRun.IsAlive(worker.Value), "the worker stopped before the test looked");
            await using (var refused = Run(second))
            {
                Assert.Equal(1, await refused.WaitForExitAsync(TimeSpan.FromSeconds(30)));
                var line = Assert.Single(refused.Lines);
                Assert.StartsWith($"run.sh: an earlier run on {_data} was killed before it stopped its processes, and they still run: ", line, StringComparison.Ordinal);
                Assert.Contains($"the worker (pid {worker})", line, StringComparison.Ordinal);
                Assert.Contains($"Stop them first: kill ", line, StringComparison.Ordinal);
            }

            Assert.Contains("Starting nats-server", File.ReadAllText(log), StringComparison.Ordinal);

            // Both were told to stop when the script died (SIGTERM): neither stays behind.
            await Eventually.TrueAsync(() => !ChildRun.IsAlive(worker.Value) && !ChildRun.IsAlive(nats.Value), TimeSpan.FromSeconds(60), "the killed run's worker and nats-server stop");
            client.Abort();
            await reader.ContinueWith(_ => { }, TaskScheduler.Default);
        }
        finally
        {
            foreach (var pid in new[] { worker.Value, nats.Value }.Where(ChildRun.IsAlive))
            {
                await ChildRun.Signal(pid, "KILL");
            }
        }
    }

    [Fact]
    public async Task Processes_still_holding_an_earlier_runs_lock_are_named_before_the_ports_are_checked_and_their_log_is_kept()
    {
        // Where no setpriv stops them, a killed run's nats-server and worker stay: they hold the data folder's lock,
        // which a new run checks before the ports (one of which they still use) and before it truncates the log.
        // The data folder's name has a quote and glob characters: the holder is still found (a pattern would not
        // match it, and the lock would be "held by a process this user cannot see").
        Directory.CreateDirectory(Odd);
        var log = Path.Combine(Odd, "nats-server.log");
        await File.WriteAllTextAsync(log, "the earlier run's log\n");
        using var port = new TcpListener(IPAddress.Loopback, _natsPort);
        port.Start();
        using var holder = await HoldLockAsync(Odd);
        try
        {
            var environment = Environment();
            environment["BRIDGE_DATA"] = Odd;
            // flock is no run's nats-server or worker: named, not to be killed as one.
            await AssertRefusedByForeignHolderAsync(environment, Odd, holder);
            Assert.Equal("the earlier run's log\n", File.ReadAllText(log));
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
        }
    }

    [Fact]
    public async Task A_live_run_of_another_checkout_on_the_same_data_folder_is_named_as_such_and_its_quoted_absolute_recipe_stops_it()
    {
        // Another checkout: run.sh and what it calls before the worker (the worker build of these tests).
        var clone = Path.Combine(_data, "clone");
        Directory.CreateDirectory(Path.Combine(clone, "scripts"));
        foreach (var script in new[] { "run.sh", "ensure-nats-server.sh" })
        {
            File.Copy(Path.Combine(RepoPaths.Root, "scripts", script), Path.Combine(clone, "scripts", script));
        }

        // Its data folder given relative (to its checkout, where run.sh runs), started from elsewhere (/): the
        // recipe and the messages name the folder whole.
        var environment = Environment();
        environment["BRIDGE_DATA"] = Path.GetRelativePath(clone, Odd);
        environment["Bridge__Connections__CloseTimeout"] = "00:00:05";
        await using var other = ChildRun.Start("bash", [Path.Combine(clone, "scripts", "run.sh")], environment, workingDirectory: "/");
        await other.WaitForLineAsync(l => l == "Bridge is running.", StartLimit);
        var recipe = Recipe(other);
        Assert.Equal(RecipeFor(Quote(Path.Combine(Odd, "run.pid")), Quote(clone)), recipe);
        Assert.Contains($"  NATS         nats://127.0.0.1:{_natsPort}   (JetStream data in {Odd}/nats)", other.Lines);
        var nats = ChildRun.FindProcess("nats-server", $"-p {_natsPort}");
        Assert.NotNull(nats);

        // A run of this checkout on that data folder (other ports) is refused: the holder is that live run.sh, not
        // what is left of a killed run, and it is stopped with its own recipe (which stops its worker first), not by
        // killing its three processes at once.
        var second = Environment();
        second["BRIDGE_DATA"] = Odd;
        second["WORKER_URL"] = $"http://127.0.0.1:{ChildRun.FreePort()}";
        second["NATS_PORT"] = ChildRun.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        second["NATS_MONITOR_PORT"] = ChildRun.FreePort().ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using (var refused = Run(second))
        {
            Assert.Equal(1, await refused.WaitForExitAsync(TimeSpan.FromSeconds(30)));
            Assert.Equal(
                $"run.sh: a run of another checkout (pid {other.Pid}, in {clone}) uses {Odd}. " +
                $"Stop it first with the recipe it printed (SIGTERM to that run.sh: kill {other.Pid}), or give this one its own BRIDGE_DATA",
                Assert.Single(refused.Lines));
        }

        // The printed recipe, pasted anywhere (it is run from this checkout here), stops that run in order.
        var (code, output) = await ChildRun.RunAsync("bash", ["-c", recipe], TimeSpan.FromSeconds(10));
        Assert.True(code == 0, output);
        Assert.Equal(0, await other.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains(other.Lines, l => l == "run.sh: stopped.");
        Assert.False(ChildRun.IsAlive(nats.Value), "nats-server is still running");
        Assert.False(File.Exists(Path.Combine(Odd, "run.pid")), "the pid file outlived its run");
    }

    [Fact]
    public async Task A_worker_port_taken_after_the_check_stops_everything_with_one_line_naming_the_port_and_WORKER_URL()
    {
        // Taken once nats-server runs: after the script's own check of the port, before the worker (a .NET start,
        // a second or more) binds it. So the worker itself meets the taken address.
        await using var run = Run(Environment());
        await Eventually.TrueAsync(() => ChildRun.FindProcess("nats-server", $"-p {_natsPort}") is not null, StartLimit, "nats-server starts");
        using var other = new TcpListener(IPAddress.Loopback, _workerPort);
        other.Start();
        Assert.Equal(1, await run.WaitForExitAsync(StartLimit));

        var output = run.Output;
        Assert.DoesNotContain("Bridge is running", output, StringComparison.Ordinal);
        // The worker's own line (exit code 3) and the script's, both naming the port; no stack trace.
        Assert.Contains(run.Lines, l => l.Contains($"Failed to bind to address http://127.0.0.1:{_workerPort}: address already in use.", StringComparison.Ordinal));
        Assert.Contains(run.Lines, l => l.StartsWith($"run.sh: the worker's port {_workerPort} is in use by another process.", StringComparison.Ordinal) && l.Contains("WORKER_URL=http://127.0.0.1:", StringComparison.Ordinal));
        Assert.DoesNotContain(run.Lines, l => l.TrimStart().StartsWith("at ", StringComparison.Ordinal));
        Assert.Null(ChildRun.FindProcess("nats-server", $"-p {_natsPort}"));
    }

    [Fact]
    public async Task A_relative_data_folder_starting_with_a_dash_is_the_checkouts_folder_even_with_CDPATH_exported()
    {
        // cd with an exported CDPATH goes to a folder of that name there and prints it (the data path two lines), and
        // mkdir and cd read a leading '-' as an option. The lock held in the checkout's folder shows which one is used.
        var name = "-bridge-test-" + Guid.NewGuid().ToString("N")[..8];
        var inCheckout = Path.Combine(RepoPaths.Root, name);
        var cdpath = Path.Combine(_data, "cdpath");
        Directory.CreateDirectory(Path.Combine(cdpath, name));
        Directory.CreateDirectory(inCheckout);
        using var holder = await HoldLockAsync(inCheckout);
        try
        {
            var environment = Environment();
            environment["BRIDGE_DATA"] = name;
            environment["CDPATH"] = cdpath;
            await AssertRefusedByForeignHolderAsync(environment, inCheckout, holder);
        }
        finally
        {
            holder.Kill(entireProcessTree: true);
            Directory.Delete(inCheckout, recursive: true);
        }
    }

    [Fact]
    public async Task Without_flock_a_run_says_in_one_line_that_a_second_run_on_its_data_folder_is_not_refused()
    {
        // macOS and some BusyBox systems have no flock: the lock check cannot work there, and used to say nothing.
        var bin = Path.Combine(_data, "bin-without-flock");
        Directory.CreateDirectory(bin);
        foreach (var dir in (System.Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Distinct())
        {
            foreach (var tool in Directory.Exists(dir) ? Directory.EnumerateFiles(dir) : [])
            {
                var link = Path.Combine(bin, Path.GetFileName(tool));
                if (Path.GetFileName(tool) != "flock" && !File.Exists(link))
                {
                    File.CreateSymbolicLink(link, tool);
                }
            }
        }

        using var other = new TcpListener(IPAddress.Loopback, _natsPort);
        other.Start();
        var environment = Environment();
        environment["PATH"] = bin;
        await using var run = Run(environment);
        Assert.Equal(1, await run.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(
            [
                $"run.sh: no flock here: a second run on {_data} is not refused (they would share JetStream's store); give each run its own BRIDGE_DATA",
                $"run.sh: port {_natsPort} (nats-server, NATS_PORT) is in use by another process. Stop it, or pick another port: NATS_PORT={_natsPort + 1} make run",
            ],
            run.Lines);
    }

    [Fact]
    public async Task A_nats_port_in_use_is_named_with_its_variable_before_anything_starts()
    {
        using var other = new TcpListener(IPAddress.Loopback, _natsPort);
        other.Start();

        await using var run = Run(Environment());
        Assert.Equal(1, await run.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        Assert.Equal(
            $"run.sh: port {_natsPort} (nats-server, NATS_PORT) is in use by another process. Stop it, or pick another port: NATS_PORT={_natsPort + 1} make run",
            Assert.Single(run.Lines));
        Assert.Null(ChildRun.FindProcess("nats-server", $"-m {_monitorPort}"));
        Assert.Null(ChildRun.FindProcess("Bridge.Worker.dll", $"127.0.0.1:{_workerPort}"));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_data, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }
}
