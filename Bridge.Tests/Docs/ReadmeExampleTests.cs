using System.Text.RegularExpressions;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Docs;

/// <summary>
/// README.md's examples run as written. Every fenced block carries a marker
/// <c>&lt;!-- example: NAME (run by PATH, …) --&gt;</c> naming the tests that run it; this class runs the shell ones
/// (bash, against a real worker; only its address is replaced, and <c>dotnet run --project Bridge.Cli -c Release --</c>
/// by the tool that command builds and runs) and checks that
/// no block goes without a marker, and that each named test file exists and names the example.
/// </summary>
public sealed partial class ReadmeExampleTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private const string ReadmeUrl = "http://127.0.0.1:8080";
    private const string ReadmeTool = "dotnet run --project Bridge.Cli -c Release --";
    private const string ReadmeSecret = "local-only-secret-of-at-least-32-bytes";
    private readonly string _bin = Directory.CreateTempSubdirectory("bridge-readme-").FullName;

    [GeneratedRegex(@"<!-- example: (?<name>[a-z0-9-]+) \(run by (?<paths>[^)]+)\) -->\s*\n```(?<lang>\w+)\n(?<code>.*?)```", RegexOptions.Singleline)]
    private static partial Regex Example();

    [GeneratedRegex(@"^```\w+$", RegexOptions.Multiline)]
    private static partial Regex Fence();

    private static string Readme => File.ReadAllText(Path.Combine(RepoPaths.Root, "README.md"));

    internal static string Code(string name) =>
        Example().Matches(Readme).FirstOrDefault(m => m.Groups["name"].Value == name)?.Groups["code"].Value
        ?? throw new InvalidOperationException($"README.md has no example '{name}'");

    [Fact]
    public void Every_README_code_block_names_the_tests_that_run_it()
    {
        var examples = Example().Matches(Readme);
        Assert.Equal(Fence().Count(Readme), examples.Count);
        foreach (Match m in examples)
        {
            var name = m.Groups["name"].Value;
            foreach (var path in m.Groups["paths"].Value.Split(',', StringSplitOptions.TrimEntries))
            {
                var file = Path.Combine(RepoPaths.Root, path);
                Assert.True(File.Exists(file), $"example {name}: {path} does not exist");
                if (path.EndsWith(".cs", StringComparison.Ordinal) || path.EndsWith(".mjs", StringComparison.Ordinal))
                {
                    Assert.Contains(name, File.ReadAllText(file), StringComparison.Ordinal);
                }
            }
        }
    }

    [Fact]
    public async Task The_shell_examples_stream_events_and_publish_over_http_and_with_the_bridge_tool()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var url = worker.HttpUrl.ToString().TrimEnd('/');
        var tool = await ToolAsync();
        var environment = new Dictionary<string, string?>();
        string Shell(string name) => Code(name).Replace(ReadmeUrl, url, StringComparison.Ordinal).Replace(ReadmeTool, tool, StringComparison.Ordinal);

        await using var sse = ChildRun.Start("bash", ["-c", Shell("shell-sse")], environment);
        await sse.WaitForLineAsync(l => l == "event: room.joined", TimeSpan.FromSeconds(30));

        var (code, output) = await ChildRun.RunAsync("bash", ["-c", Shell("shell-http-publish")], TimeSpan.FromSeconds(30), environment);
        Assert.Equal(0, code);
        Assert.Matches("""\{"id":null,"seq":\d+,"duplicate":false\}""", output); // curl's progress meter goes to stderr

        (code, output) = await ChildRun.RunAsync("bash", ["-c", Shell("shell-bridge-pub")], TimeSpan.FromSeconds(60), environment);
        Assert.True(code == 0, output);
        Assert.Matches(@"^stored as seq \d+ in demo \(id [^)]+\)$", output.Trim());

        // Both reached the room: the SSE example printed them as events.
        await sse.WaitForLineAsync(l => l.StartsWith("data: {\"type\":\"sensor.reading\"", StringComparison.Ordinal) && l.Contains("\"payload\":{\"celsius\":21.5}", StringComparison.Ordinal), TimeSpan.FromSeconds(30));
        Assert.Contains(sse.Lines, l => l.StartsWith("data: {\"type\":\"chat.message\"", StringComparison.Ordinal) && l.Contains("\"payload\":{\"text\":\"hi\"}", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_token_example_mints_a_token_with_the_tool_that_a_worker_without_anonymous_access_accepts()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Auth:AllowAnonymous", "false"), ("Bridge:Auth:HmacSecret", ReadmeSecret));
        var url = worker.HttpUrl.ToString().TrimEnd('/');
        var tool = await ToolAsync();
        var code = Code("shell-token");
        Assert.Contains($"export Bridge__Auth__HmacSecret={ReadmeSecret}\n", code, StringComparison.Ordinal); // the key make run is started with
        var shell = code.Replace(ReadmeUrl, url, StringComparison.Ordinal).Replace(ReadmeTool, tool, StringComparison.Ordinal);

        var (exit, output) = await ChildRun.RunAsync("bash", ["-c", shell], TimeSpan.FromSeconds(60));
        Assert.True(exit == 0, output);
        Assert.Matches("""\{"id":null,"seq":\d+,"duplicate":false\}""", output);

        // Without the token the same request is refused: the token is what let it in.
        (exit, output) = await ChildRun.RunAsync("bash", ["-c", shell.Replace("-H \"Authorization: Bearer $TOKEN\" ", "", StringComparison.Ordinal)], TimeSpan.FromSeconds(60));
        Assert.Contains("\"code\":\"unauthorized\"", output, StringComparison.Ordinal); // the 401 body
    }

    /// <summary>The built tool as one command (what the README's <c>dotnet run</c> builds and runs).</summary>
    private async Task<string> ToolAsync()
    {
        var tool = Path.Combine(_bin, "bridgectl");
        await File.WriteAllTextAsync(tool, $"#!/bin/sh\nexec dotnet '{WorkerChildProcess.Built("Bridge.Cli")}' \"$@\"\n");
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(tool, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        return tool;
    }

    public void Dispose() => Directory.Delete(_bin, recursive: true);
}
