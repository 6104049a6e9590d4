using System.Buffers;
using System.Runtime.CompilerServices;
using Bridge.Worker.Rooms;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

internal sealed partial class RoomHistory
{
    // Messages of a cursor's first read taken by one batch direct get: a short read (most resumes, a member a little
    // behind) ends there, in one request, and leaves nothing on the server. nats-server spends 2–3 times the CPU per
    // message on a batch direct get as on a consumer's delivery, at any batch size (docs/benchmarks.md, "Replay,
    // twelfth pass"), so longer reads go on through a consumer.
    private const int DirectBatch = 128;

    // Messages per pull of a cursor's consumer at most: a send queue's worth (1,024 frames by default). Two pulls are
    // in flight at most (ConsumerPulls), so a read holds at most twice this many messages it has not taken yet.
    private const int ConsumerBatch = 1024;

    // A cursor's consumer unused this long is replaced before its next read: the server deletes it after
    // ConsumerInactive, and a member may wait that long for room in its queue.
    private static readonly TimeSpan ConsumerIdle = TimeSpan.FromSeconds(20);

    /// <summary>The description of a cursor's consumer (its name is a NUID).</summary>
    internal const string ConsumerDescription = "bridge history read";

    // The server deletes a consumer left unused this long (a cursor whose reader died without disposing it).
    private static readonly TimeSpan ConsumerInactive = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Reads one room for one reader from wherever it is (<see cref="IRoomCursor"/>). The first read starts with a
    /// batch direct get; a read that wants more than that goes on through a consumer of the cursor's own (filtered
    /// on the room, no acks, in memory), which later reads continue from as long as each starts where the last
    /// ended: one consumer for a whole replay, however many paced reads it takes, deleted when the cursor is disposed.
    /// The consumer is read by <see cref="ConsumerPulls"/>: pulls of up to <see cref="ConsumerBatch"/> messages, the next
    /// one sent before the last is used up, each delivery read from its bytes on NATS.Net's read loop into a
    /// <see cref="RoomMessage"/> (no <c>NatsMsg</c> or <c>NatsHeaders</c>), at most two batches held unread.
    /// </summary>
    private sealed class Cursor(RoomHistory history, string room) : IRoomCursor
    {
        private readonly string _subject = history._options.Value.RoomSubject(room);

        // A pattern's messages are of the rooms it matches, each named by its subject.
        private readonly bool _pattern = PatternOf(room) is not null;
        // The cursor's consumer (its name) and the pulls reading it; set together.
        private string? _consumer;
        private ConsumerPulls? _pulls;

        // The stream seq of the last message the consumer delivered, and its consumer seq; valid while _consumer is set.
        private ulong _position;
        private ulong _delivered;
        private long _usedAt;
        private int _largest;

        // The consumer's deliveries' header blocks (on NATS.Net's read loop only): a block like the last is not read again,
        // and the next message of the same type reuses its string (HeaderBlockReader).
        private HeaderBlockReader? _headers;

        public async IAsyncEnumerable<RoomMessage> ReadAsync(
            ulong afterSeq, ulong? upToSeq, ulong mustReach, ReadLimit limit, DropCheck? check, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            // Nothing is after the top of the unsigned range, and nothing is in (afterSeq, upToSeq] when afterSeq >= upToSeq.
            if (afterSeq == ulong.MaxValue || afterSeq >= upToSeq)
            {
                yield break;
            }

            var read = new ReadState(afterSeq, upToSeq, limit);
            if (_pulls is null || _position != afterSeq)
            {
                // A first read, or one from elsewhere: the direct get, which often is all of it.
                await DeleteConsumerAsync();
                await foreach (var message in DirectAsync(read, check, cancellationToken))
                {
                    yield return message;
                }

                if (read.Done || (read.ShortAnswer && read.Last >= mustReach))
                {
                    yield break;
                }
            }

            // Retention may drop messages while the consumer reads (it skips them): the read checks afterwards whether
            // the last message known to be stored before it still is.
            if (check is not null && read.Last > 0)
            {
                check.ConfirmAfterRead = read.Last;
            }

            await foreach (var message in ConsumeAsync(read, mustReach, cancellationToken))
            {
                yield return message;
            }
        }

        /// <summary>
        /// The read's first messages in one batch direct get. With a check, it starts at the read's start itself, which
        /// comes back first exactly when it is still stored in the room; the answer is one consistent read of the
        /// stream, so then nothing after it was dropped unread.
        /// </summary>
        private async IAsyncEnumerable<RoomMessage> DirectAsync(ReadState read, DropCheck? check, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            var start = read.Last;
            var probing = check is not null && start > 0;
            var batch = Math.Min(DirectBatch, read.Left);
            var received = 0;
            var first = probing;
            var maxBytes = read.Limited ? read.BytesLeft : 0;
            await foreach (var stored in history._directGet.GetBatchAsync(_subject, probing ? start - 1 : start, probing ? batch + 1 : batch, maxBytes, cancellationToken))
            {
                if (first)
                {
                    first = false;
                    if (stored.Seq == start)
                    {
                        continue;
                    }

                    check!.Dropped = true;
                }

                received++;
                var name = NameOf(stored.Subject);
                if ((name is null ? read.Pass(stored.Seq) : read.Take(stored.Seq, stored.Data.Length + stored.Subject.Length, ref _largest)) is not { } take)
                {
                    yield break;
                }

                if (name is not null)
                {
                    yield return history._reader.Create(name, stored.Seq, 0, stored.Timestamp, stored.Headers, stored.Data);
                }

                if (!take)
                {
                    yield break;
                }
            }

            if (first)
            {
                check!.Dropped = true; // nothing at or after the start in the room: it is gone, and maybe more with it
            }

            read.ShortAnswer = received < batch;
        }

        /// <summary>The rest of the read through the cursor's consumer, created where the read is if need be.</summary>
        // mustReach: a pull can come back empty while messages are still on their way, so reading does not stop at an
        // empty pull before reaching it. Given up after a few empty tries (retention may have dropped it meanwhile).
        private async IAsyncEnumerable<RoomMessage> ConsumeAsync(ReadState read, ulong mustReach, [EnumeratorCancellation] CancellationToken cancellationToken)
        {
            var pulls = await ConsumerAtAsync(read.Last, cancellationToken);
            var emptyTries = 0;
            var complete = false;
            try
            {
                while (true)
                {
                    // Pulls sized by what the read may still take: by the largest message seen so far in a byte-limited
                    // read, so what they bring into memory stays near its byte limit.
                    await pulls.TopUpAsync(read.Wanted(_largest), cancellationToken);
                    var next = await pulls.NextAsync(cancellationToken);
                    if (!next.IsDelivery)
                    {
                        if (!pulls.Idle)
                        {
                            continue; // deliveries of an earlier pull are still to take
                        }

                        // The room had no more when the pull was answered. Short of a seq known to be stored: try again
                        // (20 x 10 ms at most).
                        if (read.Last >= mustReach || ++emptyTries > 20)
                        {
                            complete = true;
                            yield break;
                        }

                        if (next.ShortWith == 0)
                        {
                            await Task.Delay(TimeSpan.FromMilliseconds(10), history._time, cancellationToken);
                        }

                        continue;
                    }

                    if (next.Delivered != _delivered + 1)
                    {
                        // A delivery went missing on the way: read again from the last message taken, on a new consumer.
                        throw new NatsJSException($"the history consumer of room '{room}' skipped a delivery after {_position}");
                    }

                    _delivered = next.Delivered;
                    _position = next.Seq;
                    if (next.PullFilled)
                    {
                        emptyTries = 0;
                    }

                    var taken = next.Message is not null ? read.Take(next.Seq, next.Size, ref _largest) : read.Pass(next.Seq);
                    if (taken is not { } take)
                    {
                        yield break;
                    }

                    if (next.Message is not null)
                    {
                        yield return next.Message;
                    }

                    if (!take)
                    {
                        // The read's last: the consumer is where the read ended only if nothing more was asked for.
                        complete = pulls.Idle;
                        yield break;
                    }
                }
            }
            finally
            {
                // A read left with pulls open or deliveries unread (the reader stopped, or failed): the consumer is past
                // what was read, so it is not continued.
                if (!complete)
                {
                    await DeleteConsumerAsync();
                }
            }
        }

        /// <summary>
        /// One delivery of the cursor's consumer, read on NATS.Net's read loop from its bytes: null for a pattern's
        /// subject that names no room.
        /// </summary>
        private RoomMessage? Read(string subject, ulong seq, long timestamp, in ReadOnlySequence<byte>? headers, in ReadOnlySequence<byte> payload)
        {
            if (NameOf(subject) is not { } name)
            {
                return null;
            }

            var block = (_headers ??= new HeaderBlockReader(history._nats.Connection.Opts.HeaderEncoding)).Read(headers);
            if (block.Malformed)
            {
                // Delivered with what could be read (the defaults for the rest), as a message without headers would be.
                history.LogMalformedHeaders(name, seq);
            }

            try
            {
                return history._reader.Create(name, seq, 0, timestamp, block, payload);
            }
            catch (Exception ex)
            {
                // Nothing a backend stores should get here (the reader falls back to binary), but one message that
                // cannot be read must not stop the read at it for good: passed over, logged, the rest delivered.
                history.LogUnreadable(ex, name, seq);
                return null;
            }
        }

        /// <summary>The cursor's consumer, delivering the room's messages after <paramref name="afterSeq"/>.</summary>
        private async ValueTask<ConsumerPulls> ConsumerAtAsync(ulong afterSeq, CancellationToken cancellationToken)
        {
            var now = history._time.GetTimestamp();
            if (_pulls is not null && (_position != afterSeq || history._time.GetElapsedTime(_usedAt, now) > ConsumerIdle))
            {
                await DeleteConsumerAsync();
            }

            _usedAt = now;
            if (_pulls is not null)
            {
                return _pulls;
            }

            var o = history._options.Value;
            // A NUID (22 characters, as NATS.Net names its ordered consumers), not a longer readable name: the name is in
            // every delivery's reply subject ($JS.ACK.<stream>.<consumer>.…), which the server writes and NATS.Net's read
            // loop reads into a string per message ("Replay, eighth pass (issue 14)"). Operators tell the consumer by its
            // description.
            var name = Nuid.NewNuid();
            await history._nats.JetStream.CreateOrUpdateConsumerAsync(
                o.StreamName,
                new ConsumerConfig
                {
                    Name = name,
                    Description = ConsumerDescription,
                    FilterSubject = _subject,
                    DeliverPolicy = ConsumerConfigDeliverPolicy.ByStartSequence,
                    OptStartSeq = afterSeq + 1,
                    AckPolicy = ConsumerConfigAckPolicy.None,
                    // Reader state only: in memory, one replica, gone by itself if the cursor is never disposed.
                    MemStorage = true,
                    NumReplicas = 1,
                    InactiveThreshold = ConsumerInactive,
                },
                cancellationToken);
            _consumer = name;
            _pulls = await ConsumerPulls.OpenAsync(
                history._nats.Connection, history._nats.JetStream.Opts.Prefix, o.StreamName, name, ConsumerBatch, Read,
                history._directGet.Timeout, history._time, cancellationToken);
            _position = afterSeq;
            _delivered = 0;
            return _pulls;
        }

        private async ValueTask DeleteConsumerAsync()
        {
            if (_consumer is not { } consumer)
            {
                return;
            }

            var pulls = _pulls;
            _consumer = null;
            _pulls = null;
            try
            {
                if (pulls is not null)
                {
                    await pulls.DisposeAsync();
                }

                // Not the reader's token: a reader that is closing still removes its consumer (bounded by the request timeout).
                await history._nats.JetStream.DeleteConsumerAsync(history._options.Value.StreamName, consumer);
            }
            catch (Exception ex) when (ex is NatsJSException or NATS.Client.Core.NatsException or OperationCanceledException)
            {
                // The server removes it after ConsumerInactive anyway.
                history.LogConsumerNotDeleted(ex, consumer);
            }
        }

        public ValueTask DisposeAsync() => DeleteConsumerAsync();

        /// <summary>
        /// The room a stored message is of: the cursor's own, or for a pattern the room its subject names (null when it
        /// names none: skipped, not counted against the read's limit, as the pattern's live feed skips it).
        /// </summary>
        private string? NameOf(string subject) => _pattern ? history._options.Value.RoomOf(subject, live: false) : room;
    }

    /// <summary>Where one read is: its last message, what it may still take, and whether it is done.</summary>
    private sealed class ReadState(ulong afterSeq, ulong? upToSeq, ReadLimit limit)
    {
        public ulong Last { get; private set; } = afterSeq;

        public int Left { get; private set; } = limit.MaxMessages;

        public long BytesLeft { get; private set; } = limit.MaxBytes;

        public bool Limited { get; } = limit.Bytes > 0;

        public bool Done { get; private set; }

        /// <summary>
        /// Messages the read may still take, at most: its count left, the seqs left before its end, and in a byte-limited
        /// read its bytes left over the largest message seen (16 before any is seen: a small first pull).
        /// </summary>
        public int Wanted(int largest)
        {
            var wanted = Left;
            if (upToSeq is { } end)
            {
                wanted = (int)Math.Min((ulong)wanted, end - Last);
            }

            if (Limited)
            {
                wanted = largest == 0 ? Math.Min(wanted, 16) : (int)Math.Clamp(BytesLeft / largest, 1, wanted);
            }

            return wanted;
        }

        /// <summary>The direct get's answer held fewer than it asked for: the room had no more then.</summary>
        public bool ShortAnswer { get; set; }

        /// <summary>
        /// Takes a message: null when it is past the read's end (not taken; the read is done), true when the read may
        /// take more after it, false when it was the read's last.
        /// </summary>
        public bool? Take(ulong seq, int size, ref int largest)
        {
            if (upToSeq is { } end && seq > end)
            {
                Done = true;
                return null;
            }

            Last = seq;
            largest = Math.Max(largest, size);
            BytesLeft -= size;
            Left--;
            Done = seq >= upToSeq || Left == 0 || BytesLeft <= 0;
            return !Done;
        }

        /// <summary>Passes over a message the read does not return (a pattern's subject that is no room): as <see cref="Take"/>, uncounted.</summary>
        public bool? Pass(ulong seq)
        {
            if (upToSeq is { } end && seq > end)
            {
                Done = true;
                return null;
            }

            Last = seq;
            Done = seq >= upToSeq;
            return !Done;
        }
    }

    [LoggerMessage(EventId = 1232, Level = LogLevel.Warning, Message = "Message {Seq} of room {Room} has a malformed header block; delivered with the headers that could be read")]
    private partial void LogMalformedHeaders(string room, ulong seq);

    [LoggerMessage(EventId = 1233, Level = LogLevel.Error, Message = "Message {Seq} of room {Room} could not be read from its stored bytes; passed over")]
    private partial void LogUnreadable(Exception exception, string room, ulong seq);

    [LoggerMessage(EventId = 1234, Level = LogLevel.Error, Message = "The last-seq batch sender failed; its place in flight was given back")]
    private static partial void LogLastSeqSenderFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 1231, Level = LogLevel.Debug, Message = "History consumer {Consumer} could not be deleted; the server removes it when inactive")]
    private partial void LogConsumerNotDeleted(Exception exception, string consumer);
}
