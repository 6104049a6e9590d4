using System.Globalization;
using System.Text.Json.Nodes;
using System.Xml.Linq;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Tools;

/// <summary>
/// The <c>bridgectl</c> tool as a user runs it (its built dll, a process per command) against a real worker that
/// requires tokens: tokens minted from the worker's configuration, checked as the worker checks them, a
/// configuration checked without starting, pub/sub through the worker, and the load harness through --target.
/// </summary>
public sealed class BridgeToolTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private static readonly TimeSpan CommandLimit = TimeSpan.FromSeconds(60);
    private readonly Tokens _tokens = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("bridge-tool-").FullName;

    /// <summary>The worker's auth settings as environment variables, the way a deployment gives them (auth.env).</summary>
    private Dictionary<string, string?> WorkerEnvironment => new()
    {
        ["Bridge__Auth__HmacSecret"] = _tokens.HmacSecret,
        ["Bridge__Auth__Issuer"] = Tokens.Issuer,
        ["Bridge__Auth__Audience"] = Tokens.Audience,
        ["ASPNETCORE_ENVIRONMENT"] = null,
        ["DOTNET_ENVIRONMENT"] = null,
    };

    internal static Task<(int ExitCode, string Output)> Bridge(IEnumerable<string> args, IReadOnlyDictionary<string, string?>? environment = null, string? stdin = null) =>
        ChildRun.RunAsync("dotnet", [WorkerChildProcess.Built("Bridge.Cli"), .. args], CommandLimit, environment, stdin);

    [Fact]
    public async Task Help_names_the_tool_by_its_installed_name_bridgectl()
    {
        // Installed it is bridgectl (README "Tools": on Debian and Ubuntu `bridge` is iproute2's tool).
        var (code, output) = await Bridge(["help"]);
        Assert.Equal(0, code);
        Assert.StartsWith("usage: bridgectl <command> [options]", output.TrimStart(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_minted_token_carries_the_configured_issuer_and_audience_and_grants_only_its_rooms_on_a_real_worker()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var (code, token) = await Bridge(["token", "--sub", "alice", "--rooms", "tool.*", "--expires", "10m"], WorkerEnvironment);
        Assert.Equal(0, code);
        token = token.Trim();
        Assert.Equal(3, token.Split('.').Length);

        await using var client = await TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"));
        var welcome = await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        Assert.Equal("alice", welcome.Payload!["user"]!.GetValue<string>());
        await client.JoinAndWaitAsync("tool.a");
        await client.JoinAsync("other");
        Assert.Equal(ErrorCodes.Forbidden, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);
    }

    [Fact]
    public async Task Checktoken_prints_the_grants_of_a_valid_token_and_the_workers_reason_for_a_refused_one()
    {
        var (_, token) = await Bridge(["token", "--sub", "bob", "--sub-rooms", "a.>", "--pub-rooms", "b"], WorkerEnvironment);

        var (code, output) = await Bridge(["checktoken", "-"], WorkerEnvironment, stdin: token);
        Assert.Equal(0, code);
        Assert.Contains("  sub          bob", output, StringComparison.Ordinal);
        Assert.Contains("  may join     a.>", output, StringComparison.Ordinal);
        Assert.Contains("  may publish  b", output, StringComparison.Ordinal);

        var other = new Dictionary<string, string?>(WorkerEnvironment) { ["Bridge__Auth__HmacSecret"] = new string('x', 40) };
        (code, output) = await Bridge(["checktoken", token.Trim()], other);
        Assert.Equal(1, code);
        Assert.Contains("refused (signature): the token's signature is not valid", output, StringComparison.Ordinal);

        (code, output) = await Bridge(["checktoken", token.Trim(), "--Bridge:Auth:Audience=someone-else"], WorkerEnvironment);
        Assert.Equal(1, code);
        Assert.Contains("refused (audience)", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Checkconfig_reads_appsettings_then_environment_like_the_worker_and_names_every_invalid_setting()
    {
        // appsettings.json with two mistakes, appsettings.Staging.json with a third; the environment fixes none.
        await File.WriteAllTextAsync(Path.Combine(_dir, "appsettings.json"),
            """{"Bridge":{"Auth":{"HmacSecret":"short"},"Connections":{"MaxFrameBytes":10}}}""");
        await File.WriteAllTextAsync(Path.Combine(_dir, "appsettings.Staging.json"),
            """{"Bridge":{"Auth":{"AllowedOrigins":["https://ok.example","not an origin"]}}}""");
        var (code, output) = await Bridge(["checkconfig", "--content-root", _dir, "--environment", "Staging"]);
        Assert.Equal(1, code);
        Assert.Contains("(environment Staging)", output, StringComparison.Ordinal);
        Assert.Contains("invalid: Bridge:Auth:HmacSecret must be at least 32 bytes.", output, StringComparison.Ordinal);
        Assert.Contains("'not an origin'", output, StringComparison.Ordinal);
        Assert.Contains("MaxFrameBytes", output, StringComparison.Ordinal);

        // Environment variables win over appsettings, as in the worker.
        var fixedEnvironment = new Dictionary<string, string?>
        {
            ["Bridge__Auth__HmacSecret"] = _tokens.HmacSecret,
            ["Bridge__Connections__MaxFrameBytes"] = "65536",
            ["Bridge__Auth__AllowedOrigins__1"] = "https://two.example",
        };
        (code, output) = await Bridge(["checkconfig", "--content-root", _dir, "--environment", "Staging"], fixedEnvironment);
        Assert.Equal(0, code);
        Assert.Contains("  signing keys 1 (HmacSecret)", output, StringComparison.Ordinal);
        Assert.EndsWith("valid", output.TrimEnd(), StringComparison.Ordinal);

        // A key set that cannot be read fails as it would at the worker's start.
        (code, output) = await Bridge(["checkconfig", "--content-root", _dir, "--Bridge:Auth:JwksPath=/nonexistent/jwks.json"], fixedEnvironment);
        Assert.Equal(1, code);
        Assert.Contains("Bridge:Auth:JwksPath '/nonexistent/jwks.json' cannot be read", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Pub_and_sub_go_through_a_worker_with_their_tokens_and_a_refused_token_is_explained()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var room = Names.Room("tool");
        var (_, token) = await Bridge(["token", "--sub", "carol", "--rooms", room], WorkerEnvironment);
        var common = new[] { "--url", worker.HttpUrl.ToString(), "--token", token.Trim() };

        await using var sub = ChildRun.Start("dotnet", [WorkerChildProcess.Built("Bridge.Cli"), "sub", room, "--count", "1", "--for", "60s", .. common]);
        await sub.WaitForLineAsync(l => l.StartsWith($"joined {room} at seq ", StringComparison.Ordinal), CommandLimit);

        var (code, output) = await Bridge(["pub", room, """{"text":"via the tool"}""", "--type", "chat.message", "--id", "p-1", .. common]);
        Assert.Equal(0, code);
        var stored = System.Text.RegularExpressions.Regex.Match(output, @"stored as seq (\d+) in ");
        Assert.True(stored.Success, output);

        Assert.Equal(0, await sub.WaitForExitAsync(CommandLimit));
        var line = JsonNode.Parse(sub.Lines.Single(l => l.StartsWith('{')))!;
        Assert.Equal(ulong.Parse(stored.Groups[1].Value, CultureInfo.InvariantCulture), line["seq"]!.GetValue<ulong>());
        Assert.Equal("carol", line["from"]!.GetValue<string>());
        Assert.Equal("via the tool", line["payload"]!["text"]!.GetValue<string>());

        (code, output) = await Bridge(["pub", room, "1", "--url", worker.HttpUrl.ToString(), "--timeout", "20s"]);
        Assert.Equal(1, code);
        Assert.Contains("HTTP 401", output, StringComparison.Ordinal);

        // A mistyped option is refused before anything is sent (exit code 2), not ignored.
        (code, output) = await Bridge(["pub", room, "1", "--url", worker.HttpUrl.ToString(), "--tokne", token.Trim()]);
        Assert.Equal(2, code);
        Assert.Contains("unknown option for 'pub': --tokne", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Bench_loads_a_target_through_its_url_with_a_token_command_and_reports_thresholds_as_junit()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings());
        var reports = Path.Combine(_dir, "reports");
        // Tokens from the tool itself, once per user: 4 users for 20 connections stays within 5 per user.
        var tokenCommand = $"dotnet {WorkerChildProcess.Built("Bridge.Cli")} token --sub {{sub}} --rooms 'bench.>' --expires 10m";
        var (code, output) = await Bridge(
        [
            "bench", "fanout", "--target", worker.HttpUrl.ToString(), "--token-command", tokenCommand, "--users", "4",
            "--connections", "20", "--rate", "20", "--seconds", "2", "--p99-ms", "5000", "--threshold", "delivered>=1",
            "--report-dir", reports,
        ], WorkerEnvironment);
        Assert.True(code == 0, output);

        var junitPath = Path.Combine(reports, "fanout.junit.xml");
        Assert.Equal((byte)'<', File.ReadAllBytes(junitPath)[0]); // no byte-order mark
        var junit = XDocument.Load(junitPath);
        var suite = AssertJUnitShape(junit);
        Assert.Equal("0", suite.Attribute("failures")!.Value);
        Assert.Contains(suite.Elements("testcase"), t => t.Attribute("name")!.Value == "delivered >= 1");
        Assert.Equal("20", Property(suite, "subscribers"));
        Assert.True(double.Parse(Property(suite, "delivered")!, CultureInfo.InvariantCulture) >= 20 * 40, "20 msg/s for 2 s to 20 subscribers");
        var markdown = await File.ReadAllTextAsync(Path.Combine(reports, "fanout.md"));
        Assert.Contains($"| target | {worker.HttpUrl}", markdown, StringComparison.Ordinal);

        // A threshold that cannot hold fails the run (exit 1) and shows as a JUnit failure; the key is not in the report.
        (code, output) = await Bridge(
        [
            "bench", "fanout", "--target", worker.HttpUrl.ToString(), "--signing-key", _tokens.HmacSecret,
            "--token-issuer", Tokens.Issuer, "--token-audience", Tokens.Audience,
            "--connections", "5", "--rate", "10", "--seconds", "1", "--p99-ms", "5000", "--threshold", "delivered_per_s>=100000000",
            "--report-dir", reports,
        ]);
        Assert.Equal(1, code);
        suite = AssertJUnitShape(XDocument.Load(Path.Combine(reports, "fanout.junit.xml")));
        Assert.Equal("1", suite.Attribute("failures")!.Value);
        var failed = Assert.Single(suite.Elements("testcase"), t => t.Element("failure") is not null);
        Assert.Equal("delivered_per_s >= 100,000,000", failed.Attribute("name")!.Value);
        Assert.DoesNotContain(_tokens.HmacSecret, await File.ReadAllTextAsync(Path.Combine(reports, "fanout.md")), StringComparison.Ordinal);
        Assert.DoesNotContain(_tokens.HmacSecret, output, StringComparison.Ordinal);
    }

    /// <summary>The JUnit XML shape CI systems read: counts that agree with the test cases, names and times.</summary>
    private static XElement AssertJUnitShape(XDocument junit)
    {
        var root = junit.Root!;
        Assert.Equal("testsuites", root.Name.LocalName);
        var suites = root.Elements("testsuite").ToList();
        Assert.NotEmpty(suites);
        Assert.Equal(suites.Sum(s => int.Parse(s.Attribute("tests")!.Value, CultureInfo.InvariantCulture)), int.Parse(root.Attribute("tests")!.Value, CultureInfo.InvariantCulture));
        Assert.Equal(suites.Sum(s => int.Parse(s.Attribute("failures")!.Value, CultureInfo.InvariantCulture)), int.Parse(root.Attribute("failures")!.Value, CultureInfo.InvariantCulture));
        foreach (var s in suites)
        {
            Assert.False(string.IsNullOrEmpty(s.Attribute("name")?.Value));
            Assert.True(double.Parse(s.Attribute("time")!.Value, CultureInfo.InvariantCulture) > 0);
            var cases = s.Elements("testcase").ToList();
            Assert.Equal(cases.Count, int.Parse(s.Attribute("tests")!.Value, CultureInfo.InvariantCulture));
            Assert.Equal(cases.Count(c => c.Element("failure") is not null), int.Parse(s.Attribute("failures")!.Value, CultureInfo.InvariantCulture));
            Assert.All(cases, c => Assert.False(string.IsNullOrEmpty(c.Attribute("classname")?.Value) || string.IsNullOrEmpty(c.Attribute("name")?.Value)));
            Assert.Contains(cases, c => c.Attribute("name")!.Value == "scenario completed");
        }

        return suites[0];
    }

    private static string? Property(XElement suite, string name) =>
        suite.Element("properties")!.Elements("property").FirstOrDefault(p => p.Attribute("name")!.Value == name)?.Attribute("value")!.Value;

    public void Dispose()
    {
        _tokens.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
