using System.Text.RegularExpressions;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Nats;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>What the worker needs from nats-server: the oldest version it accepts, and stream limits it sets.</summary>
public sealed class NatsServerVersionTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Theory]
    [InlineData("2.9.10", false)]
    [InlineData("2.10.27", false)]
    [InlineData("2.12.1", false)]
    [InlineData("2.13.9", false)]
    [InlineData("2.14.0", true)]
    [InlineData("2.14.0-RC.1", true)]
    [InlineData("2.15.1", true)]
    [InlineData("2.15", true)]
    [InlineData("3.0.0", true)]
    [InlineData("", false)]
    [InlineData(null, false)]
    [InlineData("v2.15.1", false)]
    [InlineData("2.x.1", false)]
    public void Versions_below_the_minimum_or_unreadable_are_refused_and_later_ones_accepted(string? version, bool accepted)
    {
        var refusal = NatsServerRequirement.Refusal(version, "nats://example:4222");
        Assert.Equal(accepted, refusal is null);
        if (refusal is not null)
        {
            Assert.Contains(NatsServerRequirement.Minimum.ToString(), refusal, StringComparison.Ordinal);
            Assert.Contains("nats://example:4222", refusal, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void The_install_script_requires_the_same_minimum_as_the_worker()
    {
        var script = File.ReadAllText(Path.Combine(RepoPaths.Root, "scripts", "ensure-nats-server.sh"));
        var min = Regex.Match(script, @"^MIN_VERSION=(\S+)$", RegexOptions.Multiline);
        Assert.True(min.Success, "scripts/ensure-nats-server.sh sets no MIN_VERSION");
        Assert.Equal(NatsServerRequirement.Minimum.ToString(), min.Groups[1].Value);
    }

    [Fact]
    public async Task The_nats_server_the_tests_run_is_one_the_worker_accepts()
    {
        await using var client = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        await client.ConnectAsync();
        Assert.Null(NatsServerRequirement.Refusal(client.ServerInfo?.Version, nats.Server.Url));
    }

    [Fact]
    public async Task The_worker_refuses_to_start_against_a_real_nats_server_below_the_minimum_and_names_both_versions()
    {
        await using var old = await NatsServerProcess.StartAsync(await BelowMinimumServerAsync());
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() => WorkerHost.StartAsync(old));
        Assert.Contains("too old", ex.Message, StringComparison.Ordinal);
        Assert.Contains($"needs {NatsServerRequirement.Minimum} or later", ex.Message, StringComparison.Ordinal);
        Assert.Matches(@"nats-server 2\.\d+\.\d+ at nats://127\.0\.0\.1:\d+", ex.Message);
    }

    [Fact]
    public async Task More_than_a_thousand_history_reads_at_once_hold_no_consumer_on_the_stream()
    {
        // nats-server 2.15 allows 1,000 consumers per stream unless the stream sets MaxConsumers. History reads (a
        // resuming client's replay) are batch direct gets: a reconnect storm of them holds no consumer at all.
        const int reads = 1_100;
        var (worker, stream, prefix) = await WorkerHost.StartOnOwnStreamAsync(nats.Server);
        await using var stopped = worker; // disposed at the end of the test
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var room = Names.Room();
        for (var i = 0; i < 3; i++)
        {
            (await js.PublishAsync($"{prefix}.{room}", new byte[] { (byte)'1' })).EnsureSuccess();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(3));
        var history = worker.Get<RoomHistory>();
        var open = new List<IAsyncEnumerator<Bridge.Worker.Core.RoomMessage>>();
        try
        {
            // Each read stops inside its first batch (3 messages, 1 taken) and stays open until it is disposed.
            foreach (var chunk in Enumerable.Range(0, reads).Chunk(100))
            {
                var started = chunk.Select(async _ =>
                {
                    var reader = history.ReadAsync(room, 0, null, timeout.Token).GetAsyncEnumerator(timeout.Token);
                    Assert.True(await reader.MoveNextAsync());
                    Assert.Equal(1UL, reader.Current.Seq);
                    return reader;
                }).ToList();
                open.AddRange(await Task.WhenAll(started));
            }

            var info = await js.GetStreamAsync(stream, cancellationToken: timeout.Token);
            Assert.Equal(reads, open.Count);
            Assert.Equal(0, info.Info.State.ConsumerCount);
        }
        finally
        {
            foreach (var reader in open)
            {
                await reader.DisposeAsync();
            }
        }
    }

    // A real nats-server older than the minimum: scripts/ensure-nats-server.sh --below-minimum fetches one (Debian's
    // trixie package) into tools/ once.
    private static async Task<string> BelowMinimumServerAsync()
    {
        var (exitCode, output, error) = await ChildProcess.RunAsync("bash", [Path.Combine(RepoPaths.Root, "scripts", "ensure-nats-server.sh"), "--below-minimum"], TimeSpan.FromMinutes(3));
        Assert.True(exitCode == 0, $"ensure-nats-server.sh --below-minimum: {error}");
        return output.Trim();
    }
}
