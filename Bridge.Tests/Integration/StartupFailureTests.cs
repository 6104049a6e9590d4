using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Integration;

/// <summary>The worker process refusing to start: one line that says what to change, and an exit code scripts can read.</summary>
public sealed class StartupFailureTests
{
    [Fact]
    public async Task An_invalid_setting_stops_the_worker_with_one_line_naming_the_key_and_exit_code_2()
    {
        var (code, output) = await ChildRun.RunAsync("dotnet",
            [WorkerChildProcess.Dll, "--urls=http://127.0.0.1:0", "--Bridge:Auth:HmacSecret=too-short", "--Bridge:Nats:Url=nats://127.0.0.1:1"],
            TimeSpan.FromSeconds(60), new Dictionary<string, string?> { ["ASPNETCORE_ENVIRONMENT"] = "Production" });

        Assert.Equal(2, code);
        var line = Assert.Single(output.Split('\n'), l => l.Contains("\"EventId\":4101", StringComparison.Ordinal));
        Assert.Contains("Invalid configuration, the worker did not start: Bridge:Auth:HmacSecret must be at least 32 bytes.", line, StringComparison.Ordinal);
        Assert.DoesNotContain("Hosting failed to start", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }
}
