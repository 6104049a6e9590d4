using System.Text;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Nats;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Tests.Integration;

/// <summary>Batch direct gets (<see cref="StreamDirectGet"/>) against a real nats-server, each test on a stream of its own.</summary>
public sealed class StreamDirectGetTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly string _stream = "DG" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
    private readonly string _prefix = "dg" + Guid.NewGuid().ToString("N")[..6];
    private NatsConnection _connection = null!;
    private NatsJSContext _js = null!;

    public async Task InitializeAsync()
    {
        _connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        _js = new NatsJSContext(_connection);
        await _js.CreateStreamAsync(new StreamConfig(_stream, [$"{_prefix}.>"]) { AllowDirect = true });
    }

    public async Task DisposeAsync()
    {
        await _js.DeleteStreamAsync(_stream);
        await _connection.DisposeAsync();
    }

    private StreamDirectGet DirectGet() => new(_connection, _stream, Timeout);

    private string Subject(string name) => $"{_prefix}.{name}";

    private async Task<ulong> PublishAsync(string name, string body, NatsHeaders? headers = null)
    {
        var ack = await _js.PublishAsync(Subject(name), Encoding.UTF8.GetBytes(body), headers: headers);
        ack.EnsureSuccess();
        return ack.Seq;
    }

    [Fact]
    public async Task A_batch_returns_the_subjects_messages_after_the_sequence_in_order_with_headers_and_bodies()
    {
        var seqs = new List<ulong>();
        for (var i = 0; i < 10; i++)
        {
            seqs.Add(await PublishAsync("a", $"a{i}", new NatsHeaders { ["Bridge-Type"] = "t" + i }));
            await PublishAsync("b", $"b{i}"); // interleaved: not part of the answer
        }

        var got = await DirectGet().GetBatchAsync(Subject("a"), seqs[2], 5).ToListAsync();

        Assert.Equal(seqs[3..8], got.Select(m => m.Seq));
        Assert.Equal(["a3", "a4", "a5", "a6", "a7"], got.Select(m => Encoding.UTF8.GetString(m.Data)));
        Assert.All(got, m => Assert.Equal(Subject("a"), m.Subject));
        Assert.Equal("t3", got[0].Headers["Bridge-Type"].ToString());
        Assert.All(got, m => Assert.InRange(m.Timestamp, DateTimeOffset.UtcNow.AddMinutes(-1).ToUnixTimeMilliseconds(), DateTimeOffset.UtcNow.AddMinutes(1).ToUnixTimeMilliseconds()));
    }

    [Fact]
    public async Task A_batch_larger_than_what_is_stored_ends_at_the_last_message_and_one_past_the_end_is_empty()
    {
        var last = 0UL;
        for (var i = 0; i < 3; i++)
        {
            last = await PublishAsync("c", $"c{i}");
        }

        Assert.Equal(3, (await DirectGet().GetBatchAsync(Subject("c"), 0, 1000).ToListAsync()).Count);
        Assert.Empty(await DirectGet().GetBatchAsync(Subject("c"), last, 1000).ToListAsync());
        Assert.Empty(await DirectGet().GetBatchAsync(Subject("never"), 0, 10).ToListAsync());
        Assert.Empty(await DirectGet().GetBatchAsync(Subject("c"), ulong.MaxValue, 10).ToListAsync());
    }

    [Fact]
    public async Task A_stored_message_with_an_empty_body_is_returned_and_does_not_end_the_batch()
    {
        await PublishAsync("e", "first");
        var empty = await PublishAsync("e", "", new NatsHeaders { ["Bridge-Type"] = "ping" });
        await PublishAsync("e", "third");

        var got = await DirectGet().GetBatchAsync(Subject("e"), 0, 10).ToListAsync();

        Assert.Equal(3, got.Count);
        Assert.Equal(empty, got[1].Seq);
        Assert.Empty(got[1].Data);
        Assert.Equal("third", Encoding.UTF8.GetString(got[2].Data));
    }

    [Fact]
    public async Task A_batch_stops_after_the_message_that_reaches_max_bytes()
    {
        var body = new string('x', 1000);
        for (var i = 0; i < 10; i++)
        {
            await PublishAsync("m", body);
        }

        // About 1 KB per message with its subject and headers: 2,500 bytes are crossed by the third.
        var got = await DirectGet().GetBatchAsync(Subject("m"), 0, 10, maxBytes: 2500).ToListAsync();

        Assert.Equal(3, got.Count);
    }

    [Fact]
    public async Task The_last_message_of_each_of_thousands_of_subjects_comes_back_in_requests_under_the_servers_limit()
    {
        // More subjects than one multi_last may match (1,024): the list is split, and every answer is the subject's last.
        const int subjects = 2_500;
        var expected = new Dictionary<string, ulong>();
        var pending = new List<Task<PubAckResponse>>();
        for (var i = 0; i < subjects; i++)
        {
            for (var k = 0; k < (i % 3) + 1; k++)
            {
                pending.Add(_js.PublishAsync(Subject($"many.{i}"), Encoding.UTF8.GetBytes($"{i}:{k}")).AsTask());
            }

            // At most about 1,000 publishes in flight (each one request, answered within the connection's request
            // timeout): all ~5,000 at once timed out on a loaded two-core machine.
            if (pending.Count >= 1000 || i == subjects - 1)
            {
                foreach (var ack in await Task.WhenAll(pending))
                {
                    ack.EnsureSuccess();
                }

                pending.Clear();
            }
        }

        var names = Enumerable.Range(0, subjects).Select(i => Subject($"many.{i}")).Append(Subject("none")).ToList();
        var last = await DirectGet().GetLastManyAsync(names);

        Assert.Equal(subjects, last.Count);
        Assert.False(last.ContainsKey(Subject("none")));
        for (var i = 0; i < subjects; i++)
        {
            var message = last[Subject($"many.{i}")];
            Assert.Equal($"{i}:{i % 3}", Encoding.UTF8.GetString(message.Data));
            expected[message.Subject] = message.Seq;
        }

        // The sequences are the stream's: a single direct get of one subject agrees.
        var stream = await _js.GetStreamAsync(_stream);
        var one = await stream.GetDirectAsync<byte[]>(new StreamMsgGetRequest { LastBySubj = Subject("many.7") });
        Assert.Equal(one.Headers!["Nats-Sequence"].ToString(), expected[Subject("many.7")].ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public async Task Last_messages_cut_short_by_max_bytes_are_asked_for_again_until_all_are_in()
    {
        var body = new string('y', 2000);
        for (var i = 0; i < 20; i++)
        {
            await PublishAsync($"big.{i}", body + i);
        }

        // Each answer holds about three of them: seven requests or so, one result per subject in the end.
        var last = await DirectGet().GetLastManyAsync([.. Enumerable.Range(0, 20).Select(i => Subject($"big.{i}"))], maxBytes: 5000);

        Assert.Equal(20, last.Count);
        Assert.All(Enumerable.Range(0, 20), i => Assert.EndsWith(i.ToString(System.Globalization.CultureInfo.InvariantCulture), Encoding.UTF8.GetString(last[Subject($"big.{i}")].Data)));
    }

    [Fact]
    public async Task A_wildcard_matching_more_subjects_than_one_request_may_answer_fails_with_the_servers_status()
    {
        var pending = Enumerable.Range(0, StreamDirectGet.MaxSubjectsPerRequest + 1)
            .Select(i => _js.PublishAsync(Subject($"wide.{i}"), "v"u8.ToArray()).AsTask()).ToList();
        await Task.WhenAll(pending);

        var ex = await Assert.ThrowsAsync<NatsJSException>(() => DirectGet().GetLastManyAsync([Subject("wide.*")]));
        var batch = await DirectGet().GetLastBatchAsync([Subject("wide.*")], 0, 0, 10, 0, CancellationToken.None);

        Assert.Contains("413", ex.Message, StringComparison.Ordinal);
        Assert.True(batch.TooManySubjects);
        Assert.Empty(batch.Messages);
    }

    [Fact]
    public async Task A_last_messages_batch_reads_the_subjects_as_of_up_to_seq_leaves_out_those_not_after_seq_and_counts_what_follows()
    {
        await PublishAsync("lv.a", "a1");
        var b = await PublishAsync("lv.b", "b1");
        var c = await PublishAsync("lv.c", "c1");
        var a = await PublishAsync("lv.a", "a2");
        await PublishAsync("lv.d", "d1"); // after up_to_seq: not there yet
        await PublishAsync("lv.a", "a3"); // likewise: a's last as of up_to_seq is a2

        // b's last is not after b: left out. Of c and a (stream order), one per batch.
        var first = await DirectGet().GetLastBatchAsync([Subject("lv.*")], b, a, 1, 0, CancellationToken.None);
        var second = await DirectGet().GetLastBatchAsync([Subject("lv.*")], first.Messages[^1].Seq, a, 1, 0, CancellationToken.None);
        var rest = await DirectGet().GetLastBatchAsync([Subject("lv.*")], second.Messages[^1].Seq, a, 1, 0, CancellationToken.None);

        Assert.Equal([c], first.Messages.Select(m => m.Seq));
        Assert.Equal(1UL, first.Pending);
        Assert.Equal([a], second.Messages.Select(m => m.Seq));
        Assert.Equal("a2", Encoding.UTF8.GetString(second.Messages[0].Data));
        Assert.Equal(0UL, second.Pending);
        Assert.Empty(rest.Messages);
        Assert.False(first.TooManySubjects);
    }

    [Fact]
    public async Task A_stream_that_does_not_exist_has_no_responders()
    {
        var missing = new StreamDirectGet(_connection, "NOSUCH" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant(), Timeout);

        await Assert.ThrowsAsync<NatsNoRespondersException>(() => missing.GetBatchAsync("x.y", 0, 10).ToListAsync().AsTask());
        await Assert.ThrowsAsync<NatsNoRespondersException>(() => missing.GetLastManyAsync(["x.y"]));
    }
    [Fact]
    public async Task Thousands_of_last_seq_asks_at_once_are_answered_each_with_its_own_seq_in_a_few_multi_last_requests()
    {
        // The seams of many rooms activating at once (LastSeqBatch): one request per ask would be 3,000 requests.
        const int rooms = 3_000;
        var pending = Enumerable.Range(0, rooms).Where(i => i % 4 != 0) // every fourth room has no message
            .Select(i => _js.PublishAsync(Subject($"seam.{i}"), Encoding.UTF8.GetBytes($"{i}")).AsTask()).ToList();
        var seqs = new Dictionary<string, ulong>();
        foreach (var (ack, i) in (await Task.WhenAll(pending)).Zip(Enumerable.Range(0, rooms).Where(i => i % 4 != 0)))
        {
            ack.EnsureSuccess();
            seqs[Subject($"seam.{i}")] = ack.Seq;
        }

        await using var requests = await SubjectObserver.StartAsync(nats.Server.Url, $"$JS.API.DIRECT.GET.{_stream}");
        var batch = new LastSeqBatch(DirectGet());
        var got = await Task.WhenAll(Enumerable.Range(0, rooms).Select(i => batch.GetAsync(Subject($"seam.{i}"), CancellationToken.None).AsTask()));

        for (var i = 0; i < rooms; i++)
        {
            Assert.Equal(seqs.GetValueOrDefault(Subject($"seam.{i}")), got[i]);
        }

        var sent = (await requests.DrainAsync()).Count;
        Assert.InRange(sent, 3, rooms / 100);
    }

    [Fact]
    public async Task A_failed_last_seq_batch_fails_every_ask_in_it()
    {
        var batch = new LastSeqBatch(new StreamDirectGet(_connection, "NOSUCH" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant(), Timeout));

        // Twice: a failed batch gives its place in flight back, so later asks are sent too (and fail, not hang).
        for (var round = 0; round < 2; round++)
        {
            var asks = Enumerable.Range(0, 50).Select(i => batch.GetAsync(Subject($"x{i}"), CancellationToken.None).AsTask()).ToList();
            foreach (var ask in asks)
            {
                await Assert.ThrowsAsync<NatsNoRespondersException>(() => ask.WaitAsync(Timeout));
            }
        }
    }

    [Fact]
    public async Task A_last_seq_ask_that_sent_its_batch_is_answered_with_it_not_after_the_asks_that_came_meanwhile()
    {
        // A stream whose direct gets are heard but never answered: each batch fails at the timeout. The ask that sent
        // the first batch went on sending the batches of asks that came meanwhile before it returned its own answer
        // (under steady load, not at all).
        var stream = "SILENT" + Guid.NewGuid().ToString("N")[..6].ToUpperInvariant();
        await using var silent = await SubjectObserver.StartAsync(nats.Server.Url, $"$JS.API.DIRECT.GET.{stream}");
        var batch = new LastSeqBatch(new StreamDirectGet(_connection, stream, TimeSpan.FromSeconds(1)));
        var heard = 0;
        async Task HeardAsync(int count)
        {
            await Eventually.TrueAsync(async () =>
            {
                await _connection.PingAsync();
                heard += (await silent.DrainAsync()).Count;
                return heard >= count;
            }, TimeSpan.FromSeconds(5), $"requests heard: {heard} of {count}");
        }

        // The first ask sends its batch; the three next ones, a little later, send theirs (four in flight at most).
        var first = batch.GetManyAsync([Subject("first")], CancellationToken.None);
        await HeardAsync(1);
        await Task.Delay(300);
        var others = Enumerable.Range(0, 3).Select(i => batch.GetAsync(Subject($"other{i}"), CancellationToken.None).AsTask()).ToList();
        await HeardAsync(4);

        // This one waits for a place: the first batch's end frees it.
        var late = batch.GetAsync(Subject("late"), CancellationToken.None).AsTask();
        var answer = Assert.Single(await first);
        Assert.NotNull(answer.Failure);
        Assert.False(late.IsCompleted, "the first ask was answered only once the late ask's batch had ended");

        await Assert.ThrowsAnyAsync<Exception>(() => late);
        foreach (var other in others)
        {
            await Assert.ThrowsAnyAsync<Exception>(() => other);
        }
    }
}
