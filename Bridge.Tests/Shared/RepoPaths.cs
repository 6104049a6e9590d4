// Shared with Bridge.LoadTests (linked): starting real processes for tests and benchmarks.
namespace Bridge.Testing;

internal static class RepoPaths
{
    /// <summary>The repository root: the nearest folder above the test binaries holding Bridge.sln.</summary>
    public static string Root { get; } = FindRoot();

    private static string FindRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Bridge.sln")))
        {
            dir = dir.Parent;
        }

        return dir?.FullName ?? throw new InvalidOperationException("Bridge.sln not found above " + AppContext.BaseDirectory);
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
}
