using System.Buffers;
using System.Globalization;
using System.Text.Json;
using System.Threading.Channels;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

/// <summary>
/// Batch direct gets on one stream (nats-server 2.11+): many stored messages for one request to
/// <c>$JS.API.DIRECT.GET.&lt;stream&gt;</c>, answered without a consumer (no server state before or after a call). NATS.Net
/// 3.3.2 has no wrapper for them; this is a thin request over its core API.
/// </summary>
/// <remarks>
/// A <c>multi_last</c> request is answered with the last message of each matching subject (in stream order, each with its
/// <c>Nats-Subject</c>, <c>Nats-Sequence</c>, <c>Nats-Time-Stamp</c> and <c>Nats-Num-Pending</c>: how many more matching
/// ones follow), then an end-of-batch status <c>204 EOB</c> whose <c>Nats-Num-Pending</c> counts what it did not send
/// (<c>batch</c> or <c>max_bytes</c> cut it short). <c>up_to_seq</c> reads the subjects as they were at that stream
/// position, <c>seq</c> leaves out messages before it (how a cut-short batch is continued). Nothing matching: 404. More than
/// <see cref="MaxSubjectsPerRequest"/> subjects matching: 413 (nats-server's <c>getDirectMulti</c>; ADR-31).
/// </remarks>
internal sealed class StreamDirectGet
{
    /// <summary>Most subjects one <c>multi_last</c> request may match: the server answers 413 beyond it.</summary>
    public const int MaxSubjectsPerRequest = 1024;

    private readonly INatsConnection _connection;
    private readonly string _apiSubject;

    /// <param name="connection">The NATS connection the requests go out on.</param>
    /// <param name="stream">The stream's name; it must allow direct gets (<c>allow_direct</c>).</param>
    /// <param name="timeout">How long one request may take from sending it to its end of batch.</param>
    public StreamDirectGet(INatsConnection connection, string stream, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(stream);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        _connection = connection;
        Stream = stream;
        Timeout = timeout;
        _apiSubject = $"$JS.API.DIRECT.GET.{stream}";
    }

    public string Stream { get; }

    /// <summary>How long one request may take, from sending it to its end of batch.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// One <c>multi_last</c> batch: the last message, as of stream seq <paramref name="upToSeq"/>, of each of
    /// <paramref name="subjects"/> (literal or wildcards) whose last message is after <paramref name="afterSeq"/>, in stream
    /// order: at most <paramref name="max"/> of them and about <paramref name="maxBytes"/> (0: the server's limit).
    /// <see cref="LastBatch.Pending"/> says how many more follow (continue after the last one's seq).
    /// </summary>
    /// <exception cref="NatsJSException">The server answered an error status, or not within <see cref="Timeout"/>.</exception>
    /// <exception cref="NatsNoRespondersException">No server answers direct gets on the stream.</exception>
    public async Task<LastBatch> GetLastBatchAsync(
        IReadOnlyList<string> subjects, ulong afterSeq, ulong upToSeq, int max, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        var request = Request(w =>
        {
            w.WriteStartArray("multi_last");
            foreach (var subject in subjects)
            {
                w.WriteStringValue(subject);
            }

            w.WriteEndArray();
            w.WriteNumber("up_to_seq", upToSeq);
            if (afterSeq > 0)
            {
                w.WriteNumber("seq", afterSeq + 1);
            }

            w.WriteNumber("batch", max);
            if (maxBytes > 0)
            {
                w.WriteNumber("max_bytes", Math.Min(maxBytes, int.MaxValue)); // an int on the server
            }
        });

        var messages = new List<StoredMessage>();
        await using var sub = await _connection.CreateRequestSubAsync<byte[], byte[]>(
            _apiSubject,
            request,
            replyOpts: new NatsSubOpts
            {
                Timeout = Timeout,
                // The end is the status, never an empty body: a stored message may have one.
                StopOnEmptyMsg = false,
                ThrowIfNoResponders = true,
                // Room for every reply (the messages, then the status): none is dropped for a full channel.
                ChannelOpts = new NatsSubChannelOpts { Capacity = max + 2, FullMode = BoundedChannelFullMode.Wait },
            },
            cancellationToken: cancellationToken);
        await foreach (var msg in sub.Msgs.ReadAllAsync(cancellationToken))
        {
            switch (msg.Headers?.Code ?? 0)
            {
                case 0 or 200:
                    messages.Add(StoredMessage.From(msg, Stream));
                    break;
                case 204:
                    return new LastBatch(messages, ReadUInt64(msg.Headers, "Nats-Num-Pending"), TooManySubjects: false);
                case 404:
                    return new LastBatch(messages, 0, TooManySubjects: false);
                case 413:
                    return new LastBatch([], 0, TooManySubjects: true);
                default:
                    throw new NatsJSException($"direct get on stream {Stream} failed with status {msg.Headers!.Code} {msg.Headers.MessageText}");
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        throw new NatsJSException($"direct get on stream {Stream} got no end of batch within {Timeout}");
    }

    private static byte[] Request(Action<Utf8JsonWriter> fields)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        using (var writer = new Utf8JsonWriter(buffer))
        {
            writer.WriteStartObject();
            fields(writer);
            writer.WriteEndObject();
        }

        return buffer.WrittenSpan.ToArray();
    }

    internal static ulong ReadUInt64(NatsHeaders? headers, string key) =>
        headers is not null && headers.TryGetValue(key, out var values) && values.Count > 0 &&
        ulong.TryParse(values[0], NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : 0;
}

/// <summary>What one <c>multi_last</c> batch brought: its messages, how many more follow, or that too many subjects matched (413).</summary>
internal sealed record LastBatch(IReadOnlyList<StoredMessage> Messages, ulong Pending, bool TooManySubjects);

/// <summary>
/// One message as the stream stored it, read by a direct get: its subject, stream sequence and time (the server's
/// <c>Nats-Subject</c>, <c>Nats-Sequence</c> and <c>Nats-Time-Stamp</c>), every header (the publisher's and the server's)
/// and its body.
/// </summary>
internal readonly record struct StoredMessage(string Subject, ulong Seq, long Timestamp, NatsHeaders Headers, byte[] Data)
{
    public static StoredMessage From(in NatsMsg<byte[]> msg, string stream)
    {
        var headers = msg.Headers;
        var seq = StreamDirectGet.ReadUInt64(headers, "Nats-Sequence");
        if (headers is null || seq == 0 || !headers.TryGetValue("Nats-Subject", out var subject) || subject.Count == 0)
        {
            // The server always sets both on a direct get's messages: anything else is not an answer to ours.
            throw new NatsJSException($"direct get on stream {stream} answered a message without Nats-Sequence and Nats-Subject");
        }

        var timestamp = headers.TryGetValue("Nats-Time-Stamp", out var ts) &&
                        DateTimeOffset.TryParse(ts.ToString(), CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)
            ? parsed.ToUnixTimeMilliseconds()
            : 0;
        return new StoredMessage(subject[0]!, seq, timestamp, headers, msg.Data ?? []);
    }
}
