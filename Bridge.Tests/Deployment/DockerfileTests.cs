using System.Text.RegularExpressions;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Deployment;

/// <summary>
/// The worker image without a Docker engine (none runs here): the Dockerfile's build stage is carried out as
/// written, in a copy of exactly what its COPY lines take from the build context (less what .dockerignore
/// excludes), and the runtime stage's ENV, WORKDIR and ENTRYPOINT start the published output, which must answer
/// like a worker. <c>make lint-docker</c> lints the file itself (dockerfile-utils).
/// </summary>
public sealed partial class DockerfileTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bridge-image-").FullName;

    [GeneratedRegex(@"^(?<op>[A-Z]+)\s+(?<args>.*)$")]
    private static partial Regex Instruction();

    [Fact]
    public async Task The_build_stage_run_as_written_publishes_a_worker_the_runtime_stage_starts()
    {
        var lines = Instructions(File.ReadAllText(Path.Combine(RepoPaths.Root, "Dockerfile")));
        var ignore = Ignored(File.ReadAllLines(Path.Combine(RepoPaths.Root, ".dockerignore")));
        var stages = new List<List<(string Op, string Args)>>();
        foreach (var i in lines)
        {
            if (i.Op == "FROM")
            {
                stages.Add([]);
            }

            stages[^1].Add(i);
        }

        Assert.Equal(2, stages.Count);
        var paths = new Dictionary<string, string>(StringComparer.Ordinal); // container path -> temp folder
        string Local(string containerPath) =>
            paths.Aggregate(containerPath, (p, m) => p == m.Key || p.StartsWith(m.Key + "/", StringComparison.Ordinal) ? m.Value + p[m.Key.Length..] : p);

        // Build stage: WORKDIR, COPY from the context, RUN.
        var workdir = _dir;
        foreach (var (op, args) in stages[0])
        {
            switch (op)
            {
                case "WORKDIR":
                    paths[args] = Path.Combine(_dir, "stage0" + args.Replace('/', '_'));
                    workdir = Directory.CreateDirectory(paths[args]).FullName;
                    break;
                case "COPY":
                    var parts = args.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    var dest = Path.GetFullPath(Path.Combine(workdir, parts[^1]));
                    foreach (var source in parts[..^1])
                    {
                        CopyFromContext(source, dest, parts.Length > 2 || parts[^1].EndsWith('/'), ignore);
                    }

                    break;
                case "RUN":
                    var command = Regex.Replace(args, @"(?<=\s)/[a-z]+\b", m => paths.TryGetValue(m.Value, out var p) ? p : (paths[m.Value] = Path.Combine(_dir, "out" + m.Value.Replace('/', '_'))));
                    var (code, output) = await ChildRun.RunAsync("bash", ["-c", $"cd '{workdir}' && {command}"], TimeSpan.FromMinutes(8));
                    Assert.True(code == 0, $"RUN {args} failed:\n{output}");
                    break;
            }
        }

        // Runtime stage: the published output, its environment and entry point.
        var environment = new Dictionary<string, string?>();
        string? runDir = null;
        string[]? entrypoint = null;
        foreach (var (op, args) in stages[1])
        {
            switch (op)
            {
                case "COPY":
                    var from = Regex.Match(args, @"^--from=\w+\s+(\S+)\s+\S+$");
                    Assert.True(from.Success, $"COPY {args}: the runtime stage copies only from the build stage");
                    runDir = Local(from.Groups[1].Value);
                    break;
                case "ENV":
                    var kv = args.Split('=', 2);
                    environment[kv[0]] = kv[1];
                    break;
                case "ENTRYPOINT":
                    entrypoint = System.Text.Json.JsonSerializer.Deserialize<string[]>(args);
                    break;
            }
        }

        Assert.NotNull(runDir);
        Assert.NotNull(entrypoint);
        Assert.True(File.Exists(Path.Combine(runDir, "Bridge.Worker.dll")), "the publish output has the worker");
        Assert.True(environment.ContainsKey("ASPNETCORE_HTTP_PORTS"), "the image says where the worker listens");
        var port = ChildRun.FreePort(); // never the image's 8080 in a test
        environment["ASPNETCORE_HTTP_PORTS"] = port.ToString(System.Globalization.CultureInfo.InvariantCulture);
        environment["Bridge__Nats__Url"] = nats.Server.Url;
        environment["Bridge__Auth__HmacSecret"] = new string('k', 40);
        environment["ASPNETCORE_ENVIRONMENT"] = null;
        await using var worker = ChildRun.Start(entrypoint[0], entrypoint[1..], environment, runDir);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        await Eventually.TrueAsync(async () =>
        {
            Assert.False(worker.HasExited, worker.Output);
            try
            {
                return (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/readyz"))).IsSuccessStatusCode;
            }
            catch (HttpRequestException)
            {
                return false;
            }
        }, TimeSpan.FromSeconds(60), "the image's worker becomes ready");
        // Production settings: JSON logs, and a connection without a token is refused.
        Assert.StartsWith("{", worker.Lines[0], StringComparison.Ordinal);
        Assert.Equal(System.Net.HttpStatusCode.Unauthorized, (await http.GetAsync(new Uri($"http://127.0.0.1:{port}/sse?rooms=demo"))).StatusCode);
    }

    /// <summary>Instructions with continuation lines joined, comments and blank lines dropped.</summary>
    private static List<(string Op, string Args)> Instructions(string dockerfile) =>
        [.. Regex.Replace(dockerfile, @"\\\r?\n", " ").Split('\n')
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => Instruction().Match(l))
            .Select(m => (m.Groups["op"].Value, m.Groups["args"].Value.Trim()))];

    /// <summary>.dockerignore as a predicate on context-relative paths (Go filepath.Match rules, with <c>**</c>).</summary>
    private static Func<string, bool> Ignored(IEnumerable<string> lines)
    {
        var patterns = lines.Select(l => l.Trim()).Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(p => new Regex("^" + Regex.Escape(p.TrimEnd('/')).Replace(@"\*\*/", "(.*/)?").Replace(@"\*", "[^/]*").Replace(@"\?", "[^/]") + "$"))
            .ToList();
        return relative =>
        {
            var parts = relative.Split('/');
            return Enumerable.Range(1, parts.Length).Any(n => patterns.Any(p => p.IsMatch(string.Join('/', parts[..n]))));
        };
    }

    private static void CopyFromContext(string source, string dest, bool intoFolder, Func<string, bool> ignored)
    {
        var from = Path.Combine(RepoPaths.Root, source.TrimEnd('/'));
        Assert.False(ignored(source.TrimEnd('/')), $"COPY {source}: excluded by .dockerignore");
        if (File.Exists(from))
        {
            var target = intoFolder ? Path.Combine(dest, Path.GetFileName(from)) : dest;
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(from, target, overwrite: true);
            return;
        }

        Assert.True(Directory.Exists(from), $"COPY {source}: not in the build context");
        foreach (var file in Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var relative = Path.GetRelativePath(RepoPaths.Root, file).Replace('\\', '/');
            if (!ignored(relative))
            {
                var target = Path.Combine(dest, Path.GetRelativePath(from, file));
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Copy(file, target, overwrite: true);
            }
        }
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);
}
