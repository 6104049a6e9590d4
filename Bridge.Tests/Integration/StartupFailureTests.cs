using System.Net;
using System.Net.Sockets;
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

    [Fact]
    public async Task An_address_in_use_stops_what_the_start_had_started_before_exiting_with_one_line_and_exit_code_3()
    {
        // The hosted services start before the server binds, and the join path's warm-up (here long: 10,000 rooms a
        // round, 40 rounds) runs beside the start. A failed bind then disposed the container under it: its
        // connections failed with ObjectDisposedException stack traces (seen once in CI: the rate limiter's).
        await using var nats = await NatsServerProcess.StartAsync();
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        var port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var (code, output) = await ChildRun.RunAsync("dotnet",
            [WorkerChildProcess.Dll, $"--urls=http://127.0.0.1:{port}", $"--Bridge:Nats:Url={nats.Url}", "--Bridge:Auth:HmacSecret=a-test-secret-of-more-than-32-bytes-long",
             "--Bridge:WarmUp:Rooms=10000", "--Bridge:WarmUp:MinRounds=40", "--Bridge:WarmUp:MaxRounds=40", "--Bridge:WarmUp:Timeout=00:02:00"],
            TimeSpan.FromSeconds(60), new Dictionary<string, string?> { ["ASPNETCORE_ENVIRONMENT"] = "Production" });

        Assert.Equal(3, code);
        Assert.Single(output.Split('\n'), l => l.Contains("\"EventId\":4102", StringComparison.Ordinal));
        // Stopped, not dropped: the host's stop ran (the lifetime's "shutting down" record) and every service it had
        // started ended in time (no 4104), with nothing disposed under a running one.
        Assert.Contains("Application is shutting down", output, StringComparison.Ordinal);
        Assert.DoesNotContain("\"EventId\":4104", output, StringComparison.Ordinal);
        Assert.DoesNotContain("ObjectDisposedException", output, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
    }
}
