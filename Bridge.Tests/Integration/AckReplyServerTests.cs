using System.Text;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Nats;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Tests.Integration;

/// <summary>
/// <see cref="AckReply"/> against what a real nats-server sends: the history cursor reads positions from the reply
/// subject, so it must agree with NATS.Net's own reading of it on every delivery.
/// </summary>
public sealed class AckReplyServerTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task Every_delivery_of_a_consumer_reads_as_the_same_stream_seq_consumer_seq_and_time_as_NATS_Net_gives()
    {
        var stream = "AR" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var subject = "ar" + Guid.NewGuid().ToString("N")[..6];
        await using var connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(connection);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await js.CreateStreamAsync(new StreamConfig(stream, [$"{subject}.>"]), timeout.Token);
        try
        {
            for (var i = 0; i < 20; i++)
            {
                // Another subject between: the room's stream seqs are not its consumer seqs.
                (await js.PublishAsync($"{subject}.a", Encoding.UTF8.GetBytes($"a{i}"), cancellationToken: timeout.Token)).EnsureSuccess();
                (await js.PublishAsync($"{subject}.b", Encoding.UTF8.GetBytes($"b{i}"), cancellationToken: timeout.Token)).EnsureSuccess();
            }

            var consumer = await js.CreateOrUpdateConsumerAsync(stream, new ConsumerConfig
            {
                Name = "reader",
                FilterSubject = $"{subject}.a",
                AckPolicy = ConsumerConfigAckPolicy.None,
                DeliverPolicy = ConsumerConfigDeliverPolicy.ByStartSequence,
                OptStartSeq = 5,
            }, timeout.Token);

            var replies = new ConsumerAckReplies(stream, "reader");
            var seen = 0;
            await foreach (var msg in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = 100 }, cancellationToken: timeout.Token))
            {
                var metadata = msg.Metadata!.Value;
                Assert.True(AckReply.TryParse(msg.ReplyTo, out var seq, out var delivered, out var timestamp));
                Assert.Equal(metadata.Sequence.Stream, seq);
                Assert.Equal(metadata.Sequence.Consumer, delivered);
                Assert.Equal(metadata.Timestamp.ToUnixTimeMilliseconds(), timestamp);

                // The consumer's own reading: every reply starts as it expects (so it skips that start), same values.
                Assert.StartsWith(replies.Prefix, msg.ReplyTo, StringComparison.Ordinal);
                Assert.True(replies.TryParse(msg.ReplyTo, out var seq2, out var delivered2, out var timestamp2));
                Assert.Equal((seq, delivered, timestamp), (seq2, delivered2, timestamp2));
                seen++;
            }

            Assert.Equal(18, seen); // seqs 5, 7, …, 39
        }
        finally
        {
            await js.DeleteStreamAsync(stream);
        }
    }
}
