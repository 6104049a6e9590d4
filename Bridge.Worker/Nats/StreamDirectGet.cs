using System.Buffers;
using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Threading.Channels;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

/// <summary>
/// Batch direct gets on one stream (nats-server 2.11+): many stored messages for one request to
/// <c>$JS.API.DIRECT.GET.&lt;stream&gt;</c>, answered without a consumer (no server state before or after a call).
/// NATS.Net 3.3.2 has no wrapper for them; this is a thin request over its core API.
/// </summary>
/// <remarks>
/// <para>
/// The server answers a batch request with one message per stored message (its headers plus <c>Nats-Stream</c>,
/// <c>Nats-Subject</c>, <c>Nats-Sequence</c>, <c>Nats-Time-Stamp</c>, <c>Nats-Num-Pending</c> and
/// <c>Nats-Last-Sequence</c>, the previous message of the batch), then an end-of-batch status <c>204 EOB</c> whose
/// <c>Nats-Num-Pending</c> says how many matching messages it did not send. Nothing matching is <c>404</c>; a bad
/// request <c>408</c>; a <c>multi_last</c> matching more than <see cref="MaxSubjectsPerRequest"/> subjects <c>413</c>
/// (nats-server <c>stream.go</c>, <c>getDirectRequest</c> and <c>getDirectMulti</c>). The server stops a batch early once
/// it has sent <c>max_bytes</c> (default: its max pending, 64 MB), counting the message that crosses it.
/// </para>
/// <para>
/// Each request reads its replies from the connection's shared inbox (no SUB per request), into a channel sized
/// for every reply it can get, so none is dropped. A stored message with an empty body is a message, never the end:
/// the end is the status. Statuses other than 204 and 404 and a request without its end within
/// <see cref="Timeout"/> throw <see cref="NatsJSException"/>; no responders (no such stream, or no server
/// answering direct gets) throws <see cref="NatsNoRespondersException"/>.
/// </para>
/// </remarks>
internal sealed class StreamDirectGet
{
    /// <summary>
    /// Most subjects one <c>multi_last</c> request may match: the server answers 413 beyond it
    /// (<c>maxAllowedResponses</c> in nats-server's <c>getDirectMulti</c>). <see cref="GetLastManyAsync"/> splits larger lists.
    /// </summary>
    public const int MaxSubjectsPerRequest = 1024;

    // Bytes of subject names per multi_last request, well under the server's default 1 MB max payload.
    private const int MaxSubjectBytesPerRequest = 256 * 1024;

    // multi_last requests of one GetLastManyAsync in flight at once.
    private const int ParallelRequests = 4;

    private readonly INatsConnection _connection;
    private readonly string _apiSubject;

    /// <param name="connection">The NATS connection the requests go out on.</param>
    /// <param name="stream">The stream's name; it must allow direct gets (<c>allow_direct</c>).</param>
    /// <param name="timeout">How long one request may take from sending it to its end of batch.</param>
    /// <param name="apiPrefix">The JetStream API prefix (<c>$JS.API</c>, or a domain's).</param>
    public StreamDirectGet(INatsConnection connection, string stream, TimeSpan timeout, string apiPrefix = "$JS.API")
    {
        ArgumentNullException.ThrowIfNull(connection);
        ArgumentException.ThrowIfNullOrEmpty(stream);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(timeout, TimeSpan.Zero);
        _connection = connection;
        Stream = stream;
        Timeout = timeout;
        _apiSubject = $"{apiPrefix}.DIRECT.GET.{stream}";
    }

    public string Stream { get; }

    /// <summary>How long one request may take, from sending it to its end of batch.</summary>
    public TimeSpan Timeout { get; }

    /// <summary>
    /// The messages stored on <paramref name="subject"/> (wildcards allowed) after <paramref name="afterSeq"/>, oldest
    /// first: at most <paramref name="max"/>, and stopping once about <paramref name="maxBytes"/> (0: the server's
    /// limit) of subjects, headers and bodies were sent, the message that crosses it included. Fewer than asked for
    /// means the stream had no more when it answered. One request; stop enumerating at any time.
    /// </summary>
    /// <exception cref="NatsJSException">The server answered an error status, or not within <see cref="Timeout"/>.</exception>
    public async IAsyncEnumerable<StoredMessage> GetBatchAsync(
        string subject, ulong afterSeq, int max, long maxBytes = 0, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(subject);
        ArgumentOutOfRangeException.ThrowIfLessThan(max, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        if (afterSeq == ulong.MaxValue)
        {
            yield break; // nothing is after the last possible sequence (and afterSeq + 1 would wrap to "unset")
        }

        var request = Request(w =>
        {
            w.WriteNumber("seq", afterSeq + 1);
            w.WriteString("next_by_subj", subject);
            w.WriteNumber("batch", max);
            MaxBytes(w, maxBytes);
        });
        await foreach (var message in RequestAsync(request, max, cancellationToken))
        {
            yield return message;
        }
    }

    /// <summary>
    /// The last stored message of each of <paramref name="subjects"/> that has one, keyed by subject (a subject with
    /// none is absent). Split into requests of at most <see cref="MaxSubjectsPerRequest"/> subjects, a few in flight
    /// at once. Subjects may be literal or wildcards; a wildcard matching more than <see cref="MaxSubjectsPerRequest"/>
    /// subjects fails (413). <paramref name="maxBytes"/> (0: the server's limit) bounds what one answer brings in; an
    /// answer it cuts short is continued by further requests, so every last message is returned either way.
    /// </summary>
    /// <exception cref="NatsJSException">The server answered an error status, or not within <see cref="Timeout"/>.</exception>
    public async Task<IReadOnlyDictionary<string, StoredMessage>> GetLastManyAsync(
        IReadOnlyCollection<string> subjects, long maxBytes = 0, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(subjects);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        var found = new Dictionary<string, StoredMessage>(StringComparer.Ordinal);
        var chunks = Chunk(subjects.Distinct(StringComparer.Ordinal)).ToList();
        await Parallel.ForEachAsync(
            chunks,
            new ParallelOptions { MaxDegreeOfParallelism = ParallelRequests, CancellationToken = cancellationToken },
            async (chunk, ct) =>
            {
                foreach (var message in await GetLastAsync(chunk, maxBytes, ct))
                {
                    lock (found)
                    {
                        found[message.Subject] = message;
                    }
                }
            });
        return found;
    }

    /// <summary>
    /// One chunk's last messages. The server sends them in stream order; a batch cut short by <c>max_bytes</c> is
    /// continued after the last sequence received, up to the same stream position as the first answer.
    /// </summary>
    private async Task<List<StoredMessage>> GetLastAsync(List<string> subjects, long maxBytes, CancellationToken cancellationToken)
    {
        var results = new List<StoredMessage>(subjects.Count);
        ulong after = 0, upTo = 0;
        while (true)
        {
            var batch = await GetLastBatchAsync(subjects, after, upTo, 0, maxBytes, cancellationToken);
            if (batch.TooManySubjects)
            {
                throw new NatsJSException(
                    $"direct get on stream {Stream} failed with status 413: more than {MaxSubjectsPerRequest} subjects matched");
            }

            results.AddRange(batch.Messages);
            if (batch.Pending == 0 || batch.Messages.Count == 0 || batch.UpTo == 0)
            {
                return results;
            }

            after = batch.Messages[^1].Seq;
            upTo = upTo == 0 ? batch.UpTo : upTo;
        }
    }

    /// <summary>
    /// One <c>multi_last</c> request: the last message of each of <paramref name="subjects"/> (literal or wildcards)
    /// as of stream seq <paramref name="upToSeq"/> (0: as the stream is when it answers), leaving out subjects whose
    /// last message is not after <paramref name="afterSeq"/>, in stream order: at most <paramref name="max"/> of them
    /// (0: as many as match) and about <paramref name="maxBytes"/> (0: the server's limit). Continue a batch with
    /// <see cref="LastBatch.Pending"/> above 0 after its last message's seq, up to <see cref="LastBatch.UpTo"/>.
    /// More than <see cref="MaxSubjectsPerRequest"/> subjects matching is answered as
    /// <see cref="LastBatch.TooManySubjects"/> (the server's 413), with no messages.
    /// </summary>
    /// <exception cref="NatsJSException">The server answered another error status, or not within <see cref="Timeout"/>.</exception>
    /// <exception cref="NatsNoRespondersException">No server answers direct gets on the stream.</exception>
    public async Task<LastBatch> GetLastBatchAsync(
        IReadOnlyCollection<string> subjects, ulong afterSeq, ulong upToSeq, int max, long maxBytes, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(subjects);
        ArgumentOutOfRangeException.ThrowIfNegative(max);
        ArgumentOutOfRangeException.ThrowIfNegative(maxBytes);
        var request = Request(w =>
        {
            w.WriteStartArray("multi_last");
            foreach (var subject in subjects)
            {
                w.WriteStringValue(subject);
            }

            w.WriteEndArray();
            if (afterSeq > 0)
            {
                w.WriteNumber("seq", afterSeq + 1);
            }

            if (upToSeq > 0)
            {
                w.WriteNumber("up_to_seq", upToSeq);
            }

            if (max > 0)
            {
                w.WriteNumber("batch", max);
            }

            MaxBytes(w, maxBytes);
        });

        // A wildcard may match up to the server's limit of subjects, a literal one subject.
        var replies = max > 0 ? Math.Min(max, MaxSubjectsPerRequest)
            : subjects.Any(s => s.Contains('*') || s.Contains('>')) ? MaxSubjectsPerRequest : subjects.Count;
        var end = new BatchEnd();
        var messages = new List<StoredMessage>();
        await foreach (var message in RequestAsync(request, replies, cancellationToken, end))
        {
            messages.Add(message);
        }

        return end.TooManySubjects ? new LastBatch([], 0, 0, true) : new LastBatch(messages, end.Pending, end.UpTo, false);
    }

    private static IEnumerable<List<string>> Chunk(IEnumerable<string> subjects)
    {
        var chunk = new List<string>();
        var bytes = 0;
        foreach (var subject in subjects)
        {
            if (chunk.Count == MaxSubjectsPerRequest || bytes + subject.Length > MaxSubjectBytesPerRequest)
            {
                yield return chunk;
                chunk = [];
                bytes = 0;
            }

            chunk.Add(subject);
            bytes += subject.Length + 3;
        }

        if (chunk.Count > 0)
        {
            yield return chunk;
        }
    }

    private static void MaxBytes(Utf8JsonWriter writer, long maxBytes)
    {
        if (maxBytes > 0)
        {
            writer.WriteNumber("max_bytes", Math.Min(maxBytes, int.MaxValue)); // an int on the server
        }
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

    /// <summary>
    /// Sends one request, returning the subscription its replies come on. NATS.Net's request waits for the connection
    /// first, however long its reconnect takes (a killed server), and the reply timeout starts only once it is sent:
    /// while NATS is not connected the send is bounded by <see cref="Timeout"/> too.
    /// </summary>
    /// <exception cref="RequestNotSentException">The request was not written to NATS within <see cref="Timeout"/> (one to two of them while the connection reads open).</exception>
    private async ValueTask<INatsSub<byte[]>> SendAsync(byte[] request, int replies, CancellationToken cancellationToken)
    {
        var opts = new NatsSubOpts
        {
            Timeout = Timeout,
            // The end is the 204/404 status, not an empty body: a stored message may have one.
            StopOnEmptyMsg = false,
            ThrowIfNoResponders = true,
            // Room for every reply (the messages, then the status): none is ever dropped for a full channel.
            ChannelOpts = new NatsSubChannelOpts { Capacity = replies + 2, FullMode = BoundedChannelFullMode.DropNewest },
        };
        if (_connection.ConnectionState == NatsConnectionState.Open)
        {
            // Almost always written into the connection's buffer at once; but the connection may drop meanwhile, or the
            // server be frozen (its write buffer full): bounded by the process's shared deadline (one to two timeouts),
            // with no deadline of its own to allocate unless the caller's token can be cancelled too.
            var deadline = SharedDeadline.Of(Timeout).Token;
            using var linked = cancellationToken.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline) : null;
            return await SendBoundedAsync(request, opts, linked?.Token ?? deadline, cancellationToken);
        }

        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(Timeout);
        return await SendBoundedAsync(request, opts, bounded.Token, cancellationToken);
    }

    private async ValueTask<INatsSub<byte[]>> SendBoundedAsync(byte[] request, NatsSubOpts opts, CancellationToken bounded, CancellationToken cancellationToken)
    {
        try
        {
            return await _connection.CreateRequestSubAsync<byte[], byte[]>(_apiSubject, request, replyOpts: opts, cancellationToken: bounded);
        }
        catch (OperationCanceledException ex) when (!cancellationToken.IsCancellationRequested)
        {
            throw new RequestNotSentException($"direct get on stream {Stream} not sent within {Timeout}: NATS connection {_connection.ConnectionState}", ex);
        }
    }

    /// <summary>Sends one request and yields its messages until the end of batch; at most <paramref name="replies"/> messages are expected.</summary>
    private async IAsyncEnumerable<StoredMessage> RequestAsync(
        byte[] request, int replies, [EnumeratorCancellation] CancellationToken cancellationToken, BatchEnd? end = null)
    {
        await using var sub = await SendAsync(request, replies, cancellationToken);
        await foreach (var msg in sub.Msgs.ReadAllAsync(cancellationToken))
        {
            switch (msg.Headers?.Code ?? 0)
            {
                case 0 or 200:
                    yield return StoredMessage.From(msg, Stream);
                    break;
                case 204:
                    if (end is not null)
                    {
                        end.Pending = ReadUInt64(msg.Headers, "Nats-Num-Pending");
                        end.UpTo = ReadUInt64(msg.Headers, "Nats-UpTo-Sequence");
                    }

                    yield break;
                case 404:
                    yield break; // nothing (more) matches
                case 413 when end is not null:
                    end.TooManySubjects = true; // a multi_last matching more subjects than the server answers at once
                    yield break;
                default:
                    throw new NatsJSException($"direct get on stream {Stream} failed with status {msg.Headers!.Code} {msg.Headers.MessageText}");
            }
        }

        // The channel ended without a status: the request timed out (or the connection is closing).
        cancellationToken.ThrowIfCancellationRequested();
        throw new NatsJSException($"direct get on stream {Stream} got no end of batch within {Timeout}");
    }

    internal static ulong ReadUInt64(NatsHeaders? headers, string key) =>
        RoomMessageReader.ServerValue(headers, key) is { } text && ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
            ? value
            : 0;

    /// <summary>
    /// What the end-of-batch status said: matching messages not sent, and (multi_last) the stream position answered at;
    /// or that a multi_last matched too many subjects (413).
    /// </summary>
    private sealed class BatchEnd
    {
        public ulong Pending { get; set; }

        public ulong UpTo { get; set; }

        public bool TooManySubjects { get; set; }
    }
}

/// <summary>
/// What one <c>multi_last</c> request brought (<see cref="StreamDirectGet.GetLastBatchAsync"/>): its messages in stream
/// order, how many more matching ones it did not send (<c>Nats-Num-Pending</c> of its end), the stream seq it answered
/// as of (<c>Nats-UpTo-Sequence</c>; 0 when the server did not say), or that more subjects matched than one request
/// may answer (413; then no messages).
/// </summary>
internal sealed record LastBatch(IReadOnlyList<StoredMessage> Messages, ulong Pending, ulong UpTo, bool TooManySubjects);

/// <summary>
/// One message as the stream stored it, read by a direct get: its subject, stream sequence and time (from the
/// server's <c>Nats-Subject</c>, <c>Nats-Sequence</c> and <c>Nats-Time-Stamp</c> headers), every header (the
/// publisher's and the server's) and its body.
/// </summary>
/// <param name="Subject">The subject it was stored on.</param>
/// <param name="Seq">Its stream sequence (at least 1).</param>
/// <param name="Timestamp">When the stream stored it, milliseconds since the Unix epoch.</param>
/// <param name="Headers">The publisher's headers and the server's.</param>
/// <param name="Data">Its body (empty when it had none).</param>
internal readonly record struct StoredMessage(string Subject, ulong Seq, long Timestamp, NatsHeaders Headers, byte[] Data)
{
    public static StoredMessage From(in NatsMsg<byte[]> msg, string stream)
    {
        var headers = msg.Headers;
        // The server's values: a publisher's headers of the same names come first (RoomMessageReader.ServerValue).
        var seq = StreamDirectGet.ReadUInt64(headers, "Nats-Sequence");
        if (headers is null || seq == 0 || RoomMessageReader.ServerValue(headers, "Nats-Subject") is not { } subject)
        {
            // The server always sets both on a direct get's messages: anything else is not an answer to ours.
            throw new NatsJSException($"direct get on stream {stream} answered a message without Nats-Sequence and Nats-Subject");
        }

        var timestamp = RoomMessageReader.ServerValue(headers, "Nats-Time-Stamp") is { } ts &&
                        DateTimeOffset.TryParse(ts, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out var parsed)
            ? parsed.ToUnixTimeMilliseconds()
            : 0;
        return new StoredMessage(subject, seq, timestamp, headers, msg.Data ?? []);
    }
}

/// <summary>
/// A direct get that never reached the server: not written to the NATS connection within the request timeout (NATS
/// down and the connection reconnecting, or a frozen server whose write buffer is full). Every request on the same
/// connection would fail the same way now.
/// </summary>
internal sealed class RequestNotSentException(string message, Exception innerException) : NatsJSException(message, innerException);
