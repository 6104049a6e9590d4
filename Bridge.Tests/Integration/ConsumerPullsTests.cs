using System.Buffers;
using System.Diagnostics.Metrics;
using System.Text;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Nats;
using Bridge.Worker.Rooms;
using CsCheck;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Tests.Integration;

/// <summary>
/// <see cref="ConsumerPulls"/> (the history cursor's read of its consumer, without <c>NatsMsg</c>) against a real
/// nats-server, each test on a stream of its own: pipelined pulls, the header block read from raw bytes against
/// NATS.Net's own parsing of the same stored messages, a consumer deleted mid-read, cancellation.
/// </summary>
public sealed class ConsumerPullsTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IAsyncLifetime
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);
    private readonly string _stream = "CP" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
    private readonly string _prefix = "cp" + Guid.NewGuid().ToString("N")[..6];
    private readonly string _name = "pulls-test-" + Guid.NewGuid().ToString("N")[..6];
    private readonly CancellationTokenSource _timeout = new(TimeSpan.FromSeconds(60));
    private NatsConnection _connection = null!;
    private NatsJSContext _js = null!;

    public async Task InitializeAsync()
    {
        _connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url, Name = _name });
        _js = new NatsJSContext(_connection);
        await _js.CreateStreamAsync(new StreamConfig(_stream, [$"{_prefix}.>"]), _timeout.Token);
    }

    public async Task DisposeAsync()
    {
        await _js.DeleteStreamAsync(_stream);
        await _connection.DisposeAsync();
        _timeout.Dispose();
    }

    private string Subject(string name) => $"{_prefix}.{name}";

    private async Task<ulong> PublishAsync(string name, byte[] body, NatsHeaders? headers = null)
    {
        var ack = await _js.PublishAsync(Subject(name), body, headers: headers, cancellationToken: _timeout.Token);
        ack.EnsureSuccess();
        return ack.Seq;
    }

    private async Task<string> ConsumerAsync(string subject)
    {
        var name = "c" + Guid.NewGuid().ToString("N")[..8];
        await _js.CreateOrUpdateConsumerAsync(_stream, new ConsumerConfig
        {
            Name = name,
            FilterSubject = subject,
            AckPolicy = ConsumerConfigAckPolicy.None,
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
        }, _timeout.Token);
        return name;
    }

    private static readonly RoomMessageReader Reader = new(
        new MessageFallbacks(
            new Bridge.Worker.Operations.BridgeMetrics(new ServiceCollection().AddMetrics().BuildServiceProvider().GetRequiredService<IMeterFactory>(), TimeProvider.System),
            NullLogger<MessageFallbacks>.Instance),
        TimeProvider.System);

    private static RoomMessage Message(string subject, ulong seq, long timestamp, in ReadOnlySequence<byte>? headers, in ReadOnlySequence<byte> payload) =>
        Reader.Create("r", seq, 0, timestamp, HeaderBlock.Read(headers, Encoding.ASCII), payload);

    private Task<ConsumerPulls> OpenAsync(string consumer, int batch, DeliveryReader? read = null, TimeProvider? time = null) =>
        ConsumerPulls.OpenAsync(_connection, "$JS.API", _stream, consumer, batch, read ?? Message, Timeout, time ?? TimeProvider.System, _timeout.Token).AsTask();

    /// <summary>Reads until <paramref name="wanted"/> deliveries or the consumer has no more; the most asked ahead at once.</summary>
    private async Task<(List<Pulled> Deliveries, int MostAhead)> ReadAsync(ConsumerPulls pulls, int wanted, CancellationToken cancellationToken)
    {
        var deliveries = new List<Pulled>();
        var mostAhead = 0;
        while (deliveries.Count < wanted)
        {
            await pulls.TopUpAsync(wanted - deliveries.Count, cancellationToken);
            mostAhead = Math.Max(mostAhead, pulls.Asked);
            var next = await pulls.NextAsync(cancellationToken);
            if (next.IsDelivery)
            {
                deliveries.Add(next);
            }
            else if (pulls.Idle)
            {
                break;
            }
        }

        return (deliveries, mostAhead);
    }

    [Fact]
    public async Task A_read_spanning_many_small_pulls_gets_every_message_in_order_with_the_next_pull_sent_before_the_last_is_used_up()
    {
        var seqs = new List<ulong>();
        for (var i = 0; i < 100; i++)
        {
            seqs.Add(await PublishAsync("a", Encoding.UTF8.GetBytes($"{{\"n\":{i}}}")));
            await PublishAsync("b", [(byte)'{', (byte)'}']); // another room between: stream seqs are not consumer seqs
        }

        await using var pulls = await OpenAsync(await ConsumerAsync(Subject("a")), batch: 8);
        var (deliveries, mostAhead) = await ReadAsync(pulls, 1000, _timeout.Token);

        Assert.Equal(seqs, deliveries.Select(d => d.Seq));
        Assert.Equal(Enumerable.Range(1, 100).Select(i => (ulong)i), deliveries.Select(d => d.Delivered));
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"{{\"n\":{i}}}"), deliveries.Select(d => Encoding.UTF8.GetString(d.Message!.Payload.Span)));
        // Two pulls in flight at once: more asked ahead than one batch, never more than two.
        Assert.InRange(mostAhead, 9, 16);
        Assert.True(pulls.Idle);
    }

    [Fact]
    public async Task A_read_that_wants_fewer_than_stored_asks_for_no_more_than_it_wants()
    {
        for (var i = 0; i < 30; i++)
        {
            await PublishAsync("a", "1"u8.ToArray());
        }

        await using var pulls = await OpenAsync(await ConsumerAsync(Subject("a")), batch: 8);
        var (deliveries, mostAhead) = await ReadAsync(pulls, 13, _timeout.Token);

        Assert.Equal(13, deliveries.Count);
        Assert.True(pulls.Idle, "every pull was filled exactly: the consumer stands where the read ended");
        Assert.InRange(mostAhead, 1, 13);
    }

    [Fact]
    public async Task Header_values_read_from_the_raw_block_are_the_values_NATS_Net_parses_from_the_same_stored_messages()
    {
        string[] keys = ["Bridge-Type", "bridge-type", "BRIDGE-ID", "Bridge-From", "Content-Type", "X-Other"];
        string[] pads = ["", " ", "  ", "\t"];
        var entry = Gen.Select(Gen.Int[0, keys.Length - 1], Gen.String[Gen.Char['!', '~'], 0, 40], Gen.Int[0, pads.Length - 1]);
        var headerSets = entry.Array[1, 5].Array[40].Single();
        var stored = new List<NatsHeaders>();
        foreach (var set in headerSets)
        {
            var headers = new NatsHeaders();
            foreach (var (k, value, p) in set)
            {
                // Repeated keys (in any case) are sent as NATS.Net sends them: several values, the first one wins.
                var key = headers.Keys.FirstOrDefault(h => string.Equals(h, keys[k], StringComparison.OrdinalIgnoreCase)) ?? keys[k];
                var padded = pads[p] + value + pads[p];
                headers[key] = headers.TryGetValue(key, out var values) ? Microsoft.Extensions.Primitives.StringValues.Concat(values, padded) : padded;
            }

            stored.Add(headers);
            await PublishAsync("h", "{}"u8.ToArray(), headers);
        }

        // Two consumers of the same messages: one read here, one by NATS.Net.
        var consumer = await ConsumerAsync(Subject("h"));
        var natsConsumer = await _js.GetConsumerAsync(_stream, await ConsumerAsync(Subject("h")), _timeout.Token);
        var raw = new List<HeaderBlock>();
        await using (var pulls = await OpenAsync(consumer, batch: 16, (string subject, ulong seq, long ts, in ReadOnlySequence<byte>? headers, in ReadOnlySequence<byte> payload) =>
        {
            raw.Add(HeaderBlock.Read(headers, Encoding.ASCII));
            return null;
        }))
        {
            await ReadAsync(pulls, stored.Count, _timeout.Token);
        }

        var parsed = new List<NatsHeaders?>();
        await foreach (var msg in natsConsumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 1000 }, cancellationToken: _timeout.Token))
        {
            parsed.Add(msg.Headers);
        }

        Assert.Equal(stored.Count, raw.Count);
        Assert.Equal(stored.Count, parsed.Count);
        for (var i = 0; i < raw.Count; i++)
        {
            static string? First(NatsHeaders? h, string key) => h is not null && h.TryGetValue(key, out var v) && v.Count > 0 ? v[0] : null;
            Assert.False(raw[i].Malformed);
            Assert.Equal(First(parsed[i], "Bridge-Type"), raw[i].Type);
            Assert.Equal(First(parsed[i], "Bridge-From"), raw[i].From);
            Assert.Equal(First(parsed[i], "Bridge-Id"), raw[i].Id);
            Assert.Equal(First(parsed[i], "Content-Type"), raw[i].ContentType);
        }
    }

    [Fact]
    public async Task A_consumer_deleted_mid_read_fails_the_read_and_disposing_leaves_no_subscription_behind()
    {
        for (var i = 0; i < 20; i++)
        {
            await PublishAsync("a", "1"u8.ToArray());
        }

        var before = (await nats.Server.SubscriptionsOfAsync(_name)).Count;
        var consumer = await ConsumerAsync(Subject("a"));
        var pulls = await OpenAsync(consumer, batch: 4);
        await Eventually.TrueAsync(async () => (await nats.Server.SubscriptionsOfAsync(_name)).Count == before + 1, TimeSpan.FromSeconds(10));

        await ReadAsync(pulls, 4, _timeout.Token);
        await _js.DeleteConsumerAsync(_stream, consumer, _timeout.Token);
        // The next pull goes to a consumer that is gone: the server's answer (or its silence) fails the read.
        await Assert.ThrowsAnyAsync<Exception>(async () => await ReadAsync(pulls, 20, _timeout.Token));

        await pulls.DisposeAsync();
        await Eventually.TrueAsync(async () => (await nats.Server.SubscriptionsOfAsync(_name)).Count == before, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_read_waiting_for_deliveries_stops_when_cancelled()
    {
        var consumer = await ConsumerAsync(Subject("empty"));
        await using var pulls = await OpenAsync(consumer, batch: 4);
        await PublishAsync("empty", "1"u8.ToArray());
        await pulls.TopUpAsync(4, _timeout.Token);
        Assert.True((await pulls.NextAsync(_timeout.Token)).IsDelivery); // the one stored message
        Assert.False((await pulls.NextAsync(_timeout.Token)).IsDelivery); // then the pull's end (404)
        Assert.True(pulls.Idle);

        // A reader waiting for what has not come (no pull answered yet, nothing buffered) stops when cancelled.
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(_timeout.Token);
        var next = pulls.NextAsync(cancel.Token).AsTask();
        await Task.Delay(100);
        Assert.False(next.IsCompleted);
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => next);
    }

    [Fact]
    public async Task A_wait_that_gets_nothing_within_the_timeout_fails_and_the_pulls_go_on_after_it_while_a_wait_answered_in_time_is_never_failed_later()
    {
        var time = new FakeTimeProvider();
        var consumer = await ConsumerAsync(Subject("stall"));
        await using var pulls = await OpenAsync(consumer, batch: 4, time: time);

        // Nothing comes: the wait fails once the timeout has passed on the pulls' clock, not before.
        var stalled = pulls.NextAsync(_timeout.Token).AsTask();
        time.Advance(Timeout - TimeSpan.FromSeconds(1));
        await Task.Delay(100);
        Assert.False(stalled.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        var failure = await Assert.ThrowsAsync<NatsJSException>(() => stalled.WaitAsync(Timeout));
        Assert.Contains("no answer", failure.Message);

        // The pulls are not broken by it: a wait answered by a delivery returns it, and the timeout passing after that
        // fails neither that wait nor the next (the pull's end, already on its way).
        var answered = pulls.NextAsync(_timeout.Token).AsTask();
        await PublishAsync("stall", "1"u8.ToArray());
        await pulls.TopUpAsync(4, _timeout.Token);
        Assert.True((await answered.WaitAsync(Timeout)).IsDelivery);
        time.Advance(Timeout * 2);
        Assert.False((await pulls.NextAsync(_timeout.Token).AsTask().WaitAsync(Timeout)).IsDelivery); // 404: the pull came back short
        Assert.True(pulls.Idle);
    }

    [Fact]
    public async Task A_stall_timer_that_fires_before_the_clock_shows_the_timeout_still_fails_the_wait_once_it_has()
    {
        // A timer counts whole milliseconds (the timer queue's tick may be coarser) and can fire before a Stopwatch shows
        // its due time: such a callback must arm again for the rest, or the wait is never failed and the read hangs.
        var time = new EarlyTimers(new FakeTimeProvider(), TimeSpan.FromMilliseconds(5));
        var consumer = await ConsumerAsync(Subject("early"));
        await using var pulls = await OpenAsync(consumer, batch: 4, time: time);

        var stalled = pulls.NextAsync(_timeout.Token).AsTask();
        time.Fake.Advance(Timeout - TimeSpan.FromMilliseconds(5)); // the timer fires here, early
        await Task.Delay(100);
        Assert.False(stalled.IsCompleted);
        time.Fake.Advance(TimeSpan.FromMilliseconds(5));
        var failure = await Assert.ThrowsAsync<NatsJSException>(() => stalled.WaitAsync(Timeout));
        Assert.Contains("no answer", failure.Message);
    }

    /// <summary>A fake clock whose timers fire <paramref name="early"/> before their due time.</summary>
    private sealed class EarlyTimers(FakeTimeProvider fake, TimeSpan early) : TimeProvider
    {
        public FakeTimeProvider Fake => fake;

        public override long TimestampFrequency => fake.TimestampFrequency;

        public override long GetTimestamp() => fake.GetTimestamp();

        public override DateTimeOffset GetUtcNow() => fake.GetUtcNow();

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period) =>
            new Early(fake.CreateTimer(callback, state, global::System.Threading.Timeout.InfiniteTimeSpan, global::System.Threading.Timeout.InfiniteTimeSpan), early, dueTime, period);

        private sealed class Early : ITimer
        {
            private readonly ITimer _inner;
            private readonly TimeSpan _early;

            public Early(ITimer inner, TimeSpan early, TimeSpan dueTime, TimeSpan period)
            {
                (_inner, _early) = (inner, early);
                Change(dueTime, period);
            }

            public bool Change(TimeSpan dueTime, TimeSpan period) =>
                _inner.Change(dueTime > _early && dueTime != global::System.Threading.Timeout.InfiniteTimeSpan ? dueTime - _early : dueTime, period);

            public void Dispose() => _inner.Dispose();

            public ValueTask DisposeAsync() => _inner.DisposeAsync();
        }
    }
}
