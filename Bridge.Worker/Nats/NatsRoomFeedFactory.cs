using System.Buffers;
using System.Diagnostics;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Nats;

/// <summary>
/// A room's live feed is one core NATS subscription on the stream's republish subject for that room:
/// nearly free on the server (no consumer state), so a worker can hold tens of thousands. A pattern's feed is one
/// subscription with its wildcards (<c>live.rooms.devices.site-3.&gt;</c>), whatever the number of rooms it matches.
/// Each stamped message is handed to the room's <see cref="RoomSequence"/>, which fills gaps and dispatches.
/// </summary>
internal sealed partial class NatsRoomFeedFactory(
    NatsContext nats, IOptions<NatsOptions> options, RoomMessageReader reader, ILogger<NatsRoomFeedFactory> logger)
    : IRoomFeedFactory
{
    private readonly INatsDeserialize<byte[]> _bytes = nats.Connection.Opts.SerializerRegistry.GetDeserializer<byte[]>();

    public int BacklogCapacity => options.Value.RoomFeedCapacity;

    public async ValueTask<IAsyncDisposable> OpenAsync(Room room, CancellationToken cancellationToken)
    {
        var feed = NewFeed(room);
        var timeout = nats.Connection.Opts.RequestTimeout;
        if (nats.Connection.ConnectionState == NatsConnectionState.Open)
        {
            // Almost always written into the connection's buffer at once, but not always: the connection may drop
            // meanwhile (then the subscribe waits for the reconnect) or the server be frozen (its write buffer full).
            // Bounded by the process's shared deadline (one to two request timeouts), no deadline of its own to allocate.
            var deadline = SharedDeadline.Of(timeout).Token;
            if (cancellationToken.CanBeCanceled)
            {
                using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline);
                await SubscribeAsync(feed, linked.Token, cancellationToken);
            }
            else
            {
                await SubscribeAsync(feed, deadline, cancellationToken);
            }
        }
        else
        {
            // NATS.Net's subscribe waits for the connection first, however long its reconnect takes.
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            bounded.CancelAfter(timeout);
            await SubscribeAsync(feed, bounded.Token, cancellationToken);
        }

        try
        {
            // The seam: the server handles one connection's commands in order, so by the time it answers the
            // sequence's request for the room's last seq (written after the SUB) the subscription is in place.
            // Every message stored after the answer comes live; everything up to it is the room's history.
            room.Sequence.Start(await room.Services.Log.GetLastSeqAsync(room.Name, cancellationToken));
        }
        catch
        {
            await DisposeBoundedAsync(feed);
            throw;
        }

        return feed;
    }

    /// <summary>
    /// Subscribes <paramref name="feed"/>; when that fails (or is cancelled: NATS.Net may have registered it already,
    /// and a registered subscription is subscribed again on the next reconnect) it is unsubscribed again.
    /// </summary>
    /// <param name="feed">The room's feed, not subscribed yet.</param>
    /// <param name="cancellationToken">The caller's token, or one cancelled at the subscribe's deadline too.</param>
    /// <param name="callerToken">The caller's token alone: its cancellation is thrown as such.</param>
    /// <exception cref="TimeoutException">NATS was not connected again before the deadline, or the SUB not written (a frozen server).</exception>
    private async ValueTask SubscribeAsync(RoomFeed feed, CancellationToken cancellationToken, CancellationToken callerToken)
    {
        try
        {
            await nats.Connection.AddSubAsync(feed, cancellationToken);
        }
        catch (Exception ex)
        {
            await DisposeBoundedAsync(feed);
            if (ex is OperationCanceledException && !callerToken.IsCancellationRequested)
            {
                throw new TimeoutException($"room {feed.Subject} not subscribed within the request timeout (NATS connection {nats.Connection.ConnectionState})", ex);
            }

            throw;
        }
    }

    /// <summary>
    /// Unsubscribes a feed that failed to open, within the request timeout (the UNSUB's write can wait as the SUB's
    /// did: NATS down or frozen); never throws, so the caller's own failure is the one reported. A feed not
    /// unsubscribed in time is left to NATS.Net (its subscription is dropped, its UNSUB written when it can be).
    /// </summary>
    private async ValueTask DisposeBoundedAsync(RoomFeed feed)
    {
        try
        {
            await feed.DisposeAsync().AsTask().WaitAsync(nats.Connection.Opts.RequestTimeout);
        }
        catch (Exception ex)
        {
            LogFeedDisposeFailed(ex, feed.Subject);
        }
    }

    /// <summary>A room's feed on its live subject, not subscribed yet.</summary>
    private RoomFeed NewFeed(Room room)
    {
        // The feed finds this factory through its room's services (one field less per active room).
        Debug.Assert(ReferenceEquals(room.Services.Feeds, this), "a room's feeds are opened by its registry's factory");
        return new RoomFeed(room, nats.Connection, options.Value.LiveSubject(room.Name));
    }

    /// <inheritdoc />
    public async ValueTask<FeedOpen[]> OpenManyAsync(IReadOnlyList<Room> rooms)
    {
        var opens = new FeedOpen[rooms.Count];
        if (rooms.Count == 0)
        {
            return opens;
        }

        // The SUBs one after another (each is written into the connection's buffer, most at once: nothing is waited for
        // unless the writer is busy), then the rooms subscribed are asked for their last seqs together, after all their
        // SUBs (the seam, as in OpenAsync). Not all started first: a thousand writes queued at once on a busy writer each
        // kept their waits alive (2 KB of RSS per room instead of 1 at 100,000 rooms, docs/benchmarks.md).
        // The SUBs are bounded by the request timeout, together: NATS.Net's subscribe waits for the connection while it
        // reconnects (a killed server), and a batch holds one of the worker's batch opens and its entries' answers.
        using var bounded = new CancellationTokenSource(nats.Connection.Opts.RequestTimeout);
        var feeds = new RoomFeed[rooms.Count];
        var subscribed = new List<int>(rooms.Count);
        var names = new List<string>(rooms.Count);
        for (var i = 0; i < rooms.Count; i++)
        {
            feeds[i] = NewFeed(rooms[i]);
            try
            {
                await SubscribeAsync(feeds[i], bounded.Token, CancellationToken.None);
                subscribed.Add(i);
                names.Add(rooms[i].Name);
            }
            catch (Exception ex)
            {
                opens[i] = new FeedOpen(null, ex);
            }
        }

        var seqs = await rooms[0].Services.Log.GetLastSeqsAsync(names, CancellationToken.None);
        for (var k = 0; k < subscribed.Count; k++)
        {
            var i = subscribed[k];
            if (seqs[k].Failure is { } failure)
            {
                await DisposeBoundedAsync(feeds[i]);
                opens[i] = new FeedOpen(null, failure);
                continue;
            }

            rooms[i].Sequence.Start(seqs[k].Seq);
            opens[i] = new FeedOpen(feeds[i], null);
        }

        return opens;
    }

    /// <summary>
    /// One message of <paramref name="room"/>'s subscription, on NATS.Net's read loop: read into a
    /// <see cref="RoomMessage"/> and handed to the room's sequence, which dispatches it there or keeps it while it
    /// fills a gap (never waiting on the stream here: the read loop is what would bring the answer).
    /// </summary>
    private void Receive(Room room, string subject, in ReadOnlySequence<byte>? headers, in ReadOnlySequence<byte> payload)
    {
        try
        {
            var msg = NatsMsg<byte[]>.Build(subject, null, headers, payload, nats.Connection, nats.Connection.HeaderParser, _bytes);

            // A pattern's messages are of the rooms it matches, each named by its subject.
            var name = room.Pattern is null ? room.Name : options.Value.RoomOf(subject, live: true);
            if (name is null)
            {
                LogNotARoom(subject, room.Name);
                return;
            }

            if (reader.ReadStamped(name, msg) is not { } message)
            {
                LogNotFromStream(subject);
                return;
            }

            room.Sequence.OnLive(message);
        }
        catch (Exception ex)
        {
            // Nothing is lost: the room's next message shows the gap and fills it from the stream.
            LogDispatchFailed(ex, room.Name);
        }
    }

    /// <summary>
    /// The subscription itself, with no buffer or task of its own: NATS.Net's read loop hands each message straight to
    /// the room (per active room that is ~1.5 KB less than a <c>NatsSub</c> with its channel and a pump task;
    /// docs/benchmarks.md, memory per active room).
    /// </summary>
    private sealed class RoomFeed(Room room, INatsConnection connection, string subject)
        : NatsSubBase(connection, connection.SubscriptionManager, subject, queueGroup: null, opts: null), IAsyncDisposable
    {
        protected override ValueTask ReceiveInternalAsync(string subject, string? replyTo, ReadOnlySequence<byte>? headersBuffer, ReadOnlySequence<byte> payloadBuffer)
        {
            ((NatsRoomFeedFactory)room.Services.Feeds!).Receive(room, subject, headersBuffer, payloadBuffer);
            return ValueTask.CompletedTask;
        }

        // Nothing buffered to complete.
        protected override void TryComplete()
        {
        }

        /// <summary>Unsubscribes, then waits for a gap fill of the room still running.</summary>
        public override async ValueTask DisposeAsync()
        {
            await base.DisposeAsync();
            await room.Sequence.IdleAsync();
        }
    }

    [LoggerMessage(EventId = 1201, Level = LogLevel.Warning, Message = "Ignored a message on {Subject} without stream headers")]
    private partial void LogNotFromStream(string subject);

    // Debug: a backend storing under the prefix on a subject that is no room name is not the worker's concern.
    [LoggerMessage(EventId = 1210, Level = LogLevel.Debug, Message = "Ignored a message on {Subject} for pattern {Pattern}: not a valid room name")]
    private partial void LogNotARoom(string subject, string pattern);

    [LoggerMessage(EventId = 1213, Level = LogLevel.Warning, Message = "Unsubscribing {Subject} after its room failed to open did not end within the request timeout, or failed")]
    private partial void LogFeedDisposeFailed(Exception exception, string subject);

    [LoggerMessage(EventId = 1211, Level = LogLevel.Error, Message = "Reading a live message of room {Room} failed")]
    private partial void LogDispatchFailed(Exception exception, string room);
}
