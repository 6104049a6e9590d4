namespace Bridge.Testing;

/// <summary>Where the repository and the tools its scripts install are.</summary>
public static class RepoPaths
{
    private static readonly string? Found = FindRoot();

    /// <summary>The repository root: the nearest folder above the test binaries holding Bridge.sln.</summary>
    public static string Root => Found ?? throw new InvalidOperationException("Bridge.sln not found above " + AppContext.BaseDirectory);

    /// <summary>False when these binaries run outside a checkout (e.g. the load harness installed as the bridgectl tool).</summary>
    public static bool InCheckout => Found is not null;

    private static string? FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Bridge.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName;
    }

    /// <summary>
    /// The nats-server binary: $NATS_SERVER_BIN, else tools/nats-server (what scripts/ensure-nats-server.sh
    /// installs), else one on PATH.
    /// </summary>
    public static string NatsServer()
    {
        var fromEnv = Environment.GetEnvironmentVariable("NATS_SERVER_BIN");
        if (!string.IsNullOrEmpty(fromEnv) && File.Exists(fromEnv))
        {
            return fromEnv;
        }

        var local = Path.Combine(Root, "tools", "nats-server");
        if (File.Exists(local))
        {
            return local;
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, "nats-server");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new InvalidOperationException("nats-server not found: run scripts/ensure-nats-server.sh (make test does).");
    }

    /// <summary>
    /// Runs <c>scripts/<paramref name="script"/></c> (an <c>ensure-*.sh</c> that installs a tool into tools/ when it
    /// is missing and prints its path) and returns the path it printed.
    /// </summary>
    public static async Task<string> EnsureToolAsync(string script, CancellationToken cancellationToken = default)
    {
        var (code, output, error) = await ChildProcess.RunAsync(Path.Combine(Root, "scripts", script), [], TimeSpan.FromMinutes(5), cancellationToken: cancellationToken);
        var path = output.Trim();
        return code == 0 && File.Exists(path) ? path : throw new InvalidOperationException($"scripts/{script} found nothing (exit code {code}): {error.Trim()}");
    }
}
