using System.Globalization;

namespace Bridge.Testing;

/// <summary>How a <see cref="WorkerProcess"/> is started.</summary>
public sealed class WorkerProcessOptions
{
    /// <summary><c>Bridge:Nats:Url</c>: one URL, or several separated by commas.</summary>
    public required string NatsUrl { get; init; }

    /// <summary>The build of the worker to run (Debug, Release).</summary>
    public string Configuration { get; init; } = WorkerProcess.Configuration;

    /// <summary>Another build's <c>Bridge.Worker.dll</c> to run instead of this solution's (a same-run before/after); null: this solution's.</summary>
    public string? Dll { get; init; }

    /// <summary>Settings given on the command line (<c>--Key=Value</c>): they win over <see cref="Environment"/>.</summary>
    public IReadOnlyList<(string Key, string Value)> Settings { get; init; } = [];

    /// <summary>Environment variables of the process (<c>Bridge__Auth__HmacSecret</c>...).</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    /// <summary>The port on 127.0.0.1; 0 takes a free one.</summary>
    public int Port { get; init; }

    /// <summary><c>Bridge:Worker:Id</c>; <c>child-</c> and random hex when null.</summary>
    public string? Id { get; init; }

    /// <summary>What answering with a success status counts as started: <c>/readyz</c> (NATS connected, stream set
    /// up) or <c>/healthz</c> (the process serves HTTP).</summary>
    public string ReadyPath { get; init; } = "/readyz";

    /// <summary>Where the worker's output goes (log file, callbacks); discarded by default.</summary>
    public ChildProcessOptions? Output { get; init; }
}

/// <summary>
/// The real worker (Bridge.Worker.dll of the solution's build) as its own process on a loopback port, so it can be
/// SIGKILLed, SIGTERMed, started again, and its CPU and memory sampled alone. Started through <see cref="ChildProcess"/>.
/// </summary>
public sealed class WorkerProcess : IAsyncDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };
    private readonly WorkerProcessOptions _options;

    private WorkerProcess(ChildProcess process, Uri httpUrl, string id, WorkerProcessOptions options)
    {
        Process = process;
        HttpUrl = httpUrl;
        Id = id;
        _options = options;
    }

    /// <summary>The configuration these binaries were built with: Debug locally, Release under make test.</summary>
    public static string Configuration { get; } =
        AppContext.BaseDirectory.Contains($"{Path.DirectorySeparatorChar}Release{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Release" : "Debug";

    /// <summary>The worker built with <see cref="Configuration"/>.</summary>
    public static string Dll => Built("Bridge.Worker");

    public ChildProcess Process { get; }

    public Uri HttpUrl { get; }

    public Uri WebSocketUrl => new($"ws://{HttpUrl.Authority}/ws");

    /// <summary><c>Bridge:Worker:Id</c>: the <c>serverId</c> of its <c>welcome</c>, and part of its NATS connection name.</summary>
    public string Id { get; }

    public int Pid => Process.Pid;

    /// <summary>The main assembly of a project of the solution, built with <paramref name="configuration"/> (default <see cref="Configuration"/>).</summary>
    public static string Built(string project, string? configuration = null)
    {
        var dll = Path.Combine(RepoPaths.Root, project, "bin", configuration ?? Configuration, "net10.0", project + ".dll");
        return File.Exists(dll) ? dll : throw new InvalidOperationException($"{dll} not found: build {project} with -c {configuration ?? Configuration} first");
    }

    /// <summary>A worker on <paramref name="nats"/> with <paramref name="settings"/>, output discarded, once <c>/readyz</c> answers.</summary>
    public static Task<WorkerProcess> StartAsync(NatsServerProcess nats, params (string Key, string Value)[] settings) =>
        StartAsync(new WorkerProcessOptions { NatsUrl = nats.Url, Settings = settings });

    /// <summary>Starts a worker and returns once <see cref="WorkerProcessOptions.ReadyPath"/> answers (at most 60 s).</summary>
    public static async Task<WorkerProcess> StartAsync(WorkerProcessOptions options, CancellationToken cancellationToken = default)
    {
        var dll = options.Dll is { } other
            ? File.Exists(other) ? other : throw new InvalidOperationException($"{other} not found")
            : Built("Bridge.Worker", options.Configuration);
        var port = options.Port == 0 ? ChildProcess.FreePort() : options.Port;
        var id = options.Id ?? ("child-" + Guid.NewGuid().ToString("N"))[..21];
        string[] args =
        [
            dll,
            $"--urls=http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}",
            $"--Bridge:Nats:Url={options.NatsUrl}",
            $"--Bridge:Worker:Id={id}",
            "--Logging:LogLevel:Default=Warning",
            .. options.Settings.Select(s => $"--{s.Key}={s.Value}"),
        ];
        var process = ChildProcess.Start(id, "dotnet", args, (options.Output ?? new ChildProcessOptions()) with { Environment = options.Environment });
        var worker = new WorkerProcess(process, new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}"), id, options);
        await process.ReadyOrDisposedAsync(_ => worker.WaitReadyAsync(TimeSpan.FromSeconds(60), cancellationToken));
        return worker;
    }

    /// <summary>Waits until the worker answers on its ready path; returns how long that took.</summary>
    public async Task<TimeSpan> WaitReadyAsync(TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        var started = System.Diagnostics.Stopwatch.StartNew();
        await Process.WaitForHttpAsync(new Uri(HttpUrl, _options.ReadyPath), timeout, cancellationToken);
        return started.Elapsed;
    }

    /// <summary>SIGKILL: no shutdown, no clean-up, nothing released.</summary>
    public Task KillAsync() => Process.KillAsync();

    /// <summary>SIGTERM (the worker drains), SIGKILL after <paramref name="grace"/>.</summary>
    public Task<(TimeSpan Took, bool Killed)> StopAsync(TimeSpan grace) => Process.StopAsync(grace);

    /// <summary>Starts the stopped worker again, same port, id and settings; <see cref="WaitReadyAsync"/> tells when it is ready.</summary>
    public void Restart() => Process.Restart();

    /// <summary>Resident memory of the worker, from /proc.</summary>
    public long RssBytes() => Process.RssBytes();

    public TimeSpan CpuTime() => Process.CpuTime();

    /// <summary>The sum of every series of one of the worker's metrics on <c>/metrics</c> (Prometheus names, e.g. <c>bridge_catchups_total</c>).</summary>
    public async Task<double> MetricAsync(string name, CancellationToken cancellationToken)
    {
        var text = await Http.GetStringAsync(new Uri(HttpUrl, "/metrics"), cancellationToken);
        var total = 0.0;
        foreach (var line in text.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && line.Length > name.Length && line[name.Length] is ' ' or '{')
            {
                total += double.Parse(line[(line.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return total;
    }

    public ValueTask DisposeAsync() => Process.DisposeAsync();
}
