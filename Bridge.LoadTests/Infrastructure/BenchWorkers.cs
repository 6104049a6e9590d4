namespace Bridge.LoadTests.Infrastructure;

/// <summary>The harness's workers: the toolkit's <see cref="WorkerProcess"/> set up for load runs.</summary>
internal static class BenchWorkers
{
    /// <summary>
    /// Set on every worker the harness starts (command-line settings override them): tokens are required and
    /// checked against <see cref="BenchTokens.Secret"/>; connection and message-rate limits, which protect a
    /// worker from one abusive client, are off because every load client here shares one IP and one user.
    /// A worker without the auth feature ignores all of these, so the scenarios run either way.
    /// </summary>
    public static IReadOnlyDictionary<string, string?> BenchEnvironment { get; } = new Dictionary<string, string?>
    {
        ["Bridge__Auth__HmacSecret"] = BenchTokens.Secret,
        ["Bridge__Auth__AllowAnonymous"] = "false",
        ["Bridge__Limits__MaxConnectionsPerUser"] = "0",
        ["Bridge__Limits__MaxConnectionsPerIp"] = "0",
        ["Bridge__Limits__MaxConnections"] = "0",
        ["Bridge__Limits__MessagesPerSecond"] = "1000000",
        ["Bridge__Limits__MessageBurst"] = "1000000",
    };

    extension(WorkerProcess)
    {
        /// <summary>
        /// A worker of <paramref name="configuration"/>'s build on a free loopback port with <see cref="BenchEnvironment"/>
        /// and <paramref name="settings"/>, its output on stderr as <c>[worker]</c>, once <c>/healthz</c> answers.
        /// </summary>
        public static Task<WorkerProcess> StartAsync(string natsUrl, string configuration, params (string Key, string Value)[] settings) =>
            Start(natsUrl, configuration, null, settings);

        /// <summary>As <see cref="StartAsync"/>, but another build's worker (<paramref name="dll"/>): the "before" of a same-run comparison.</summary>
        public static Task<WorkerProcess> StartDllAsync(string natsUrl, string dll, params (string Key, string Value)[] settings) =>
            Start(natsUrl, WorkerProcess.Configuration, dll, settings);
    }

    /// <summary>The prefix of the harness's own environment variables that are handed to its workers without it.</summary>
    public const string WorkerEnvironmentPrefix = "BRIDGE_WORKER_ENV_";

    /// <summary>
    /// <see cref="BenchEnvironment"/> plus each of the harness's environment variables named
    /// <see cref="WorkerEnvironmentPrefix"/><c>NAME</c>, set as <c>NAME</c> on the workers only: runtime switches such as
    /// <c>BRIDGE_WORKER_ENV_DOTNET_JitStdOutFile</c> then reach the worker and not the harness or nats-server
    /// (docs/benchmarks.md, "What a warm worker still compiles").
    /// </summary>
    private static Dictionary<string, string?> WorkerEnvironment()
    {
        var environment = new Dictionary<string, string?>(BenchEnvironment);
        foreach (var entry in System.Environment.GetEnvironmentVariables().Cast<System.Collections.DictionaryEntry>())
        {
            if (entry.Key is string key && key.StartsWith(WorkerEnvironmentPrefix, StringComparison.Ordinal))
            {
                environment[key[WorkerEnvironmentPrefix.Length..]] = entry.Value as string;
            }
        }

        return environment;
    }

    private static Task<WorkerProcess> Start(string natsUrl, string configuration, string? dll, (string Key, string Value)[] settings) =>
        WorkerProcess.StartAsync(new WorkerProcessOptions
        {
            NatsUrl = natsUrl,
            Configuration = configuration,
            Dll = dll,
            Settings = settings,
            Environment = WorkerEnvironment(),
            Id = "bench-" + Guid.NewGuid().ToString("N")[..6],
            Output = ChildProcessOptions.Echo("worker"),
        });
}
