using System.Diagnostics;
using Bridge.Testing;
using Bridge.Worker.Nats;
using NATS.Client.Core;

namespace Bridge.Tests.Integration;

/// <summary>
/// Last-seq asks queued while NATS is down (a reconnect storm, a large batch join): they fail together once a batch
/// could not be sent, not one batch (one request timeout) after another.
/// </summary>
public sealed class LastSeqOutageTests : IAsyncLifetime
{
    private NatsServerProcess _nats = null!;

    public async Task InitializeAsync() => _nats = await NatsServerProcess.StartAsync();

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    [Fact]
    public async Task With_NATS_down_every_queued_ask_fails_within_about_one_request_timeout_not_in_waves()
    {
        await using var connection = new NatsConnection(new NatsOpts { Url = _nats.Url, MaxReconnectRetry = -1 });
        await connection.ConnectAsync();
        _nats.Kill();
        var down = Stopwatch.StartNew();
        while (connection.ConnectionState == NatsConnectionState.Open)
        {
            Assert.True(down.Elapsed < TimeSpan.FromSeconds(30), "the connection did not notice NATS was gone");
            await Task.Delay(20);
        }

        // Twelve batches' worth of subjects: one sender takes them a batch at a time; each batch would pay the second.
        var timeout = TimeSpan.FromSeconds(1);
        var batch = new LastSeqBatch(new StreamDirectGet(connection, "OUTAGE", timeout));
        var subjects = Enumerable.Range(0, 12 * StreamDirectGet.MaxSubjectsPerRequest).Select(i => $"rooms.r{i}").ToList();
        var asked = Stopwatch.StartNew();
        var answers = await batch.GetManyAsync(subjects, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(60));
        var took = asked.Elapsed;

        Assert.All(answers, a => Assert.IsType<RequestNotSentException>(a.Failure));
        // One timeout (the first batch's), with slack for a loaded machine; in waves it would take twelve.
        Assert.True(took < 4 * timeout, $"every ask failed only {took} after it was made");
    }
}
