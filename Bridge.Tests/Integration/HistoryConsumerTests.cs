using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Nats;
using Bridge.Worker.Rooms;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>The consumer a history cursor reads a long read through, as the server sees it.</summary>
public sealed class HistoryConsumerTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task A_cursor_reads_through_a_consumer_named_as_short_as_a_nuid_and_each_cursor_through_its_own()
    {
        // The consumer's name is in every delivery's reply subject ("Replay, eighth pass (issue 14)"): a replay of
        // 100,000 messages carries it 100,000 times, so it is a NUID (22 characters), not a longer readable name.
        var (worker, stream, prefix) = await WorkerHost.StartOnOwnStreamAsync(nats.Server);
        await using var stopped = worker; // disposed at the end of the test
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var room = Names.Room();
        for (var i = 1; i <= 400; i++)
        {
            (await js.PublishAsync($"{prefix}.{room}", System.Text.Encoding.UTF8.GetBytes(i.ToString(System.Globalization.CultureInfo.InvariantCulture)))).EnsureSuccess();
        }

        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(1));
        var history = worker.Get<RoomHistory>();
        await using var first = history.OpenCursor(room);
        await using var second = history.OpenCursor(room);

        // Past the first read's batch direct get: the rest comes through the cursor's consumer, which stays for the
        // cursor's next read (it ended exactly where the read did).
        var read = new List<ulong>();
        await foreach (var message in first.ReadAsync(0, null, 0, new ReadLimit(300, 0), null, timeout.Token))
        {
            read.Add(message.Seq);
        }

        await foreach (var message in second.ReadAsync(0, null, 0, new ReadLimit(200, 0), null, timeout.Token))
        {
            read.Add(message.Seq);
        }

        Assert.Equal([.. Enumerable.Range(1, 300).Select(i => (ulong)i), .. Enumerable.Range(1, 200).Select(i => (ulong)i)], read);
        var consumers = new List<NATS.Client.JetStream.Models.ConsumerInfo>();
        await foreach (var consumer in js.ListConsumersAsync(stream, timeout.Token))
        {
            consumers.Add(consumer.Info);
        }

        Assert.Equal(2, consumers.Count);
        Assert.NotEqual(consumers[0].Name, consumers[1].Name);
        Assert.All(consumers, c =>
        {
            Assert.Matches("^[0-9A-Za-z]{22}$", c.Name);
            Assert.Equal(RoomHistory.ConsumerDescription, c.Config.Description);
        });

        // Each goes on where its read ended, through the same consumer.
        var next = new List<ulong>();
        await foreach (var message in first.ReadAsync(300, null, 0, new ReadLimit(50, 0), null, timeout.Token))
        {
            next.Add(message.Seq);
        }

        Assert.Equal(Enumerable.Range(301, 50).Select(i => (ulong)i), next);
    }
}
