using System.Runtime.CompilerServices;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

/// <summary>
/// Reads a room's stored messages: positions and single messages by direct get (no consumer), ranges by a
/// short-lived ordered consumer filtered on the room's subject. Nothing here holds server state after a call.
/// </summary>
internal sealed class RoomHistory(NatsContext nats, IOptions<NatsOptions> options, RoomMessageReader reader) : IRoomLog
{
    // Messages per pull while replaying; large enough to stream fast, small enough to keep memory flat.
    private const int Batch = 256;

    // The first pull of a read limited in bytes, before the room's message size is known.
    private const int FirstBatch = 16;

    // How long one batched direct get may take (a latest read's page).
    private static readonly TimeSpan DirectGetTimeout = TimeSpan.FromSeconds(10);

    private INatsJSStream? _stream;
    private StreamDirectGet? _directGet;

    private async ValueTask<INatsJSStream> StreamAsync(CancellationToken cancellationToken) =>
        _stream ??= await nats.JetStream.GetStreamAsync(options.Value.StreamName, cancellationToken: cancellationToken);

    /// <inheritdoc />
    public async ValueTask<ulong> GetLastSeqAsync(string room, CancellationToken cancellationToken)
    {
        var message = await GetDirectAsync(new StreamMsgGetRequest { LastBySubj = options.Value.RoomSubject(room) }, cancellationToken);
        return message is null ? 0 : RoomMessageReader.SequenceOf(message.Value.Headers);
    }

    /// <summary>The room's last stored message, or null.</summary>
    public async ValueTask<RoomMessage?> GetLastAsync(string room, CancellationToken cancellationToken)
    {
        var message = await GetDirectAsync(new StreamMsgGetRequest { LastBySubj = options.Value.RoomSubject(room) }, cancellationToken);
        return message is null ? null : reader.ReadStamped(room, message.Value);
    }

    /// <inheritdoc />
    public async ValueTask<bool> IsStoredInRoomAsync(string room, ulong seq, CancellationToken cancellationToken)
    {
        var message = await GetDirectAsync(new StreamMsgGetRequest { Seq = seq }, cancellationToken);
        if (message is not { Headers: { } h } || !h.TryGetValue("Nats-Subject", out var subject))
        {
            return false;
        }

        // A pattern: the message is of one of the rooms it matches.
        return PatternOf(room) is { } pattern
            ? options.Value.RoomOf(subject.ToString(), live: false) is { } of && pattern.Matches(of)
            : subject.ToString() == options.Value.RoomSubject(room);
    }

    private static Security.RoomPattern? PatternOf(string name) =>
        Bridge.Contracts.RoomName.IsPattern(name) && Security.RoomPattern.TryParse(name, out var pattern) ? pattern : null;

    private async ValueTask<NatsMsg<byte[]>?> GetDirectAsync(StreamMsgGetRequest request, CancellationToken cancellationToken)
    {
        var stream = await StreamAsync(cancellationToken);
        try
        {
            var message = await stream.GetDirectAsync<byte[]>(request, cancellationToken: cancellationToken);
            // Direct get answers "not found" as a 404 status message rather than an exception. Any other status
            // (408, 503 under load) is a failure, never "no message": callers must not mistake it for the end.
            return message.Headers switch
            {
                { Code: 404 } => null,
                { Code: > 0 and not 200 } h => throw new NatsJSException($"direct get failed with status {h.Code} {h.MessageText}"),
                _ => message,
            };
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
            return null;
        }
    }

    /// <inheritdoc />
    // mustReach: a fetch can come back empty while messages are still on their way, so reading does not stop at an
    // empty fetch before reaching it. Given up after a few empty tries (retention may have dropped it meanwhile).
    public async IAsyncEnumerable<RoomMessage> ReadAsync(
        string room, ulong afterSeq, ulong? upToSeq, [EnumeratorCancellation] CancellationToken cancellationToken, ulong mustReach = 0,
        ReadLimit limit = default)
    {
        // Nothing is after the top of the unsigned range (afterSeq + 1 would wrap to 0, which JetStream reads as
        // "no start sequence"), and nothing is in (afterSeq, upToSeq] when afterSeq >= upToSeq: no consumer then.
        if (afterSeq == ulong.MaxValue || afterSeq >= upToSeq)
        {
            yield break;
        }

        var pattern = PatternOf(room);
        var last = afterSeq;
        var emptyTries = 0;
        var left = limit.MaxMessages;
        var bytesLeft = limit.MaxBytes;
        // The largest message seen so far sizes the next fetch, so what one fetch brings into memory stays near the
        // byte limit whatever the room's message size. Before any is seen, a small first fetch.
        var largest = 0;
        var consumer = await nats.JetStream.CreateOrderedConsumerAsync(
            options.Value.StreamName,
            new NatsJSOrderedConsumerOpts
            {
                FilterSubjects = [options.Value.RoomSubject(room)],
                DeliverPolicy = ConsumerConfigDeliverPolicy.ByStartSequence,
                OptStartSeq = afterSeq + 1,
                // Each batch's consumer is deleted after it; one left behind by a cancelled read (a client that
                // closed mid-replay) would hold a place under the stream's MaxConsumers for 5 minutes by default.
                InactiveThreshold = TimeSpan.FromSeconds(30),
            },
            cancellationToken);
        while (left > 0 && bytesLeft > 0)
        {
            var batch = Math.Min(Batch, left);
            if (limit.Bytes > 0)
            {
                batch = largest == 0 ? Math.Min(batch, FirstBatch) : (int)Math.Clamp(bytesLeft / largest, 1, batch);
            }

            var received = 0;
            await foreach (var msg in consumer.FetchNoWaitAsync<byte[]>(new NatsJSFetchOpts { MaxMsgs = batch }, cancellationToken: cancellationToken))
            {
                received++;
                var seq = msg.Metadata?.Sequence.Stream ?? 0;
                if (upToSeq is { } limitSeq && seq > limitSeq)
                {
                    yield break;
                }

                var timestamp = msg.Metadata?.Timestamp.ToUnixTimeMilliseconds() ?? 0;
                last = seq;
                // A pattern's messages are of the rooms it matches, each named by its subject; one that is no room name
                // is skipped (not counted against the limit), as its feed skips it live.
                var of = pattern is null ? room : options.Value.RoomOf(msg.Subject, live: false);
                if (of is not null)
                {
                    largest = Math.Max(largest, msg.Size);
                    bytesLeft -= msg.Size;
                    left--;
                    yield return reader.Create(of, seq, 0, timestamp, msg.Headers, msg.Data ?? []);
                }

                if ((upToSeq is { } end && seq >= end) || left == 0 || bytesLeft <= 0)
                {
                    yield break;
                }
            }

            if (received == 0)
            {
                // Short of a seq known to be stored: try again (20 x 10 ms at most).
                if (last >= mustReach || ++emptyTries > 20)
                {
                    yield break;
                }

                await Task.Delay(10, cancellationToken);
            }
            else
            {
                emptyTries = 0;
            }
        }
    }

    /// <inheritdoc />
    public async ValueTask<ILatestPages> ReadLatestEachAsync(string room, ulong afterSeq, ulong upToSeq, int maxRooms, CancellationToken cancellationToken)
    {
        var get = _directGet ??= new StreamDirectGet(nats.Connection, options.Value.StreamName, DirectGetTimeout);
        return await LatestPages.OpenAsync(
            get, nats.JetStream, options.Value.RoomSubject(room), afterSeq, upToSeq, maxRooms,
            m => options.Value.RoomOf(m.Subject, live: false) is { } of ? reader.Create(of, m.Seq, 0, m.Timestamp, m.Headers, m.Data) : null,
            cancellationToken);
    }

    /// <summary>The room's latest <paramref name="limit"/> messages, oldest first.</summary>
    public async ValueTask<IReadOnlyList<RoomMessage>> ReadLatestAsync(string room, int limit, CancellationToken cancellationToken)
    {
        if (limit == 1)
        {
            // The common "current value" case: one direct get, no consumer.
            return await GetLastAsync(room, cancellationToken) is { } last ? [last] : [];
        }

        // JetStream cannot read a subject backwards; read what is kept and keep the tail.
        var tail = new Queue<RoomMessage>(limit);
        await foreach (var message in ReadAsync(room, 0, null, cancellationToken))
        {
            if (tail.Count == limit)
            {
                tail.Dequeue();
            }

            tail.Enqueue(message);
        }

        return [.. tail];
    }
}
