using System.Diagnostics.Metrics;
using Bridge.Contracts;

namespace Bridge.Worker.Operations;

/// <summary>
/// The worker's instruments (System.Diagnostics.Metrics, exported in Prometheus format on <c>/metrics</c>).
/// Names are listed with what each alarm means in docs/operations.md.
/// </summary>
internal sealed class BridgeMetrics
{
    public const string MeterName = "Bridge.Worker";

    private readonly Counter<long> _opened;
    private readonly Counter<long> _closed;
    private readonly UpDownCounter<long> _active;
    private readonly Counter<long> _slowConsumers;
    private readonly Counter<long> _messagesIn;
    private readonly Counter<long> _messagesOut;
    private readonly Counter<long> _bytesOut;
    private readonly Histogram<double> _deliveryLatency;
    private readonly Counter<long> _resumes;
    private readonly Counter<long> _batchJoins;
    private readonly Counter<long> _arrayMessages;
    private readonly Counter<long> _arrayEnvelopes;
    private readonly Counter<long> _replayed;
    private readonly Counter<long> _gapFills;
    private readonly Counter<long> _gapTruncated;
    private readonly Counter<long> _latest;
    private readonly Counter<long> _catchUps;
    private readonly Counter<long> _catchUpReads;
    private readonly Counter<long> _catchUpMessages;
    private readonly Counter<long> _catchUpTruncated;
    private readonly Histogram<double> _behind;
    private Func<int>? _lagging;
    private readonly Counter<long> _natsReconnects;
    private readonly Counter<long> _authFailures;
    private readonly Counter<long> _rateLimited;
    private readonly Counter<long> _fallbacks;

    private readonly Meter _meter;

    public BridgeMetrics(IMeterFactory meters, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(meters);
        Time = time;
        var meter = _meter = meters.Create(MeterName);
        _opened = meter.CreateCounter<long>("bridge.connections.opened", description: "Connections accepted, by transport.");
        _closed = meter.CreateCounter<long>("bridge.connections.closed", description: "Connections ended, by transport and close code.");
        _active = meter.CreateUpDownCounter<long>("bridge.connections.active", description: "Open connections, by transport.");
        _slowConsumers = meter.CreateCounter<long>("bridge.slow_consumer.closes", description: "Connections closed as stalled (4008): nothing written to them for StallTimeout, or answers overflowing a queue they do not read.");
        _messagesIn = meter.CreateCounter<long>("bridge.messages.in", description: "Messages published by clients, by transport.");
        _messagesOut = meter.CreateCounter<long>("bridge.messages.out", description: "Room messages written to clients, by transport.");
        _bytesOut = meter.CreateCounter<long>("bridge.sent", unit: "By", description: "Bytes of room messages written to clients, by transport.");
        _deliveryLatency = meter.CreateHistogram<double>("bridge.delivery.latency", unit: "s",
            description: "Stream timestamp to socket write, per delivered live message (not those replayed for a join).",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _batchJoins = meter.CreateCounter<long>("bridge.joins.batched",
            description: "Live joins of batch room.join frames activated together: their feeds opened and their last seqs asked as one unit.");
        _arrayMessages = meter.CreateCounter<long>("bridge.ws.array_messages",
            description: "WebSocket messages written over a batch subprotocol (bridge.v1.*-batch): each an array of one or more envelopes.");
        _arrayEnvelopes = meter.CreateCounter<long>("bridge.ws.array_envelopes",
            description: "Envelopes (room messages and control frames) written in those arrays: divided by bridge.ws.array_messages, the envelopes per message.");
        _resumes = meter.CreateCounter<long>("bridge.resumes", description: "Joins with since (resumes), by whether retention cut them short.");
        _replayed = meter.CreateCounter<long>("bridge.replayed.messages", description: "Messages replayed from the stream to resuming clients.");
        _gapFills = meter.CreateCounter<long>("bridge.gap.fills", description: "Gaps in a room's (or pattern's) live feed filled from the stream.");
        _gapTruncated = meter.CreateCounter<long>("bridge.gap.truncated",
            description: "Gaps in a room's live feed that retention had cut into before the fill read them (its live members were sent room.joined truncated).");
        _latest = meter.CreateCounter<long>("bridge.latest.messages", description: "Latest messages (one per room) sent to joins with latest, read by batched direct gets.");
        _catchUps = meter.CreateCounter<long>("bridge.catchups", description: "Members that fell behind their room's live dispatch and read it from the stream, by transport.");
        _catchUpReads = meter.CreateCounter<long>("bridge.catchup.reads", description: "Stream reads made for members behind their room.");
        _catchUpMessages = meter.CreateCounter<long>("bridge.catchup.messages", description: "Messages read from the stream for members behind their room.");
        _catchUpTruncated = meter.CreateCounter<long>("bridge.catchup.truncated", description: "Members so far behind that retention dropped messages before they read them (sent room.joined truncated).");
        _behind = meter.CreateHistogram<double>("bridge.catchup.behind", unit: "s",
            description: "How far behind its room a member was at each catch-up read: stream time of the first message read to now.",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600] });
        // Created here (not by its source, which is made on the first connection) so it is exported from the start.
        meter.CreateObservableGauge("bridge.members.lagging", () => Volatile.Read(ref _lagging)?.Invoke() ?? 0,
            description: "Members behind their room's live dispatch, reading it from the stream.");
        _natsReconnects = meter.CreateCounter<long>("bridge.nats.reconnects", description: "Times the NATS connection was re-established.");
        _authFailures = meter.CreateCounter<long>("bridge.auth.failures", description: "Requests and refreshes refused for their token or origin, by reason.");
        _rateLimited = meter.CreateCounter<long>("bridge.rate_limited", description: "Frames and connections refused by a limit, by limit.");
        _fallbacks = meter.CreateCounter<long>("bridge.messages.fallback",
            description: "Stored messages not delivered in their stored form, by format (json, msgpack, all) and outcome (binary, skipped).");
    }

    /// <summary>Called by the room registry (which depends on these metrics, not the other way round).</summary>
    public void ObserveActiveRooms(Func<int> activeRooms) =>
        _meter.CreateObservableGauge("bridge.rooms.active", activeRooms, description: "Rooms and room patterns with at least one local member (one NATS subscription each).");

    /// <summary>Called by the room reader: members currently behind their room's live dispatch.</summary>
    public void ObserveLaggingMembers(Func<int> lagging) => Volatile.Write(ref _lagging, lagging);

    public TimeProvider Time { get; }

    public void ConnectionOpened(TransportKind transport)
    {
        var tag = new KeyValuePair<string, object?>("transport", transport.Label());
        _opened.Add(1, tag);
        _active.Add(1, tag);
    }

    public void ConnectionClosed(TransportKind transport, int code)
    {
        _active.Add(-1, new KeyValuePair<string, object?>("transport", transport.Label()));
        _closed.Add(1, new KeyValuePair<string, object?>("transport", transport.Label()), new KeyValuePair<string, object?>("code", code));
        if (code == CloseCodes.SlowConsumer)
        {
            _slowConsumers.Add(1, new KeyValuePair<string, object?>("transport", transport.Label()));
        }
    }

    /// <summary>A message came in to be published; <paramref name="transport"/> is where from (a connection's <see cref="TransportKinds.Label"/>, <c>http</c>, <c>api</c>).</summary>
    public void MessageIn(string transport) => _messagesIn.Add(1, new KeyValuePair<string, object?>("transport", transport));

    /// <summary>
    /// A room message was written to a client; <paramref name="timestamp"/> is its stream time (ms), or 0 for a message
    /// read for a join (counted, not timed: <see cref="Connections.OutboundFrame.IsTimed"/>).
    /// </summary>
    public void MessageOut(TransportKind transport, int bytes, long timestamp)
    {
        MessagesOut(transport, 1, bytes);
        DeliveredAt(transport, timestamp, NowMilliseconds);
    }

    /// <summary>
    /// <paramref name="count"/> room messages of <paramref name="bytes"/> in all were written to a client (a send loop's
    /// batch, counted once; each message's latency goes to <see cref="DeliveredAt"/>).
    /// </summary>
    public void MessagesOut(TransportKind transport, int count, long bytes)
    {
        var tag = new KeyValuePair<string, object?>("transport", transport.Label());
        _messagesOut.Add(count, tag);
        _bytesOut.Add(bytes, tag);
    }

    /// <summary>
    /// One room message of stream time <paramref name="timestamp"/> (ms) was written at <paramref name="now"/>
    /// (<see cref="NowMilliseconds"/>, read once per batch by a send loop).
    /// </summary>
    public void DeliveredAt(TransportKind transport, long timestamp, long now)
    {
        if (timestamp > 0)
        {
            _deliveryLatency.Record(Math.Max(0, now - timestamp) / 1000.0, new KeyValuePair<string, object?>("transport", transport.Label()));
        }
    }

    /// <summary>The metrics' clock as milliseconds since the Unix epoch (stream timestamps' unit).</summary>
    public long NowMilliseconds => Time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>A join with <c>since</c> answered <c>room.joined</c>.</summary>
    /// <summary>Live joins of one batch frame activated together (<c>RoomJoiner</c>), counted once their feeds are open.</summary>
    public void BatchJoined(int joins) => _batchJoins.Add(joins);

    /// <summary>One array message of a batch subprotocol written, holding <paramref name="envelopes"/> envelopes.</summary>
    public void BatchSent(int envelopes)
    {
        _arrayMessages.Add(1);
        _arrayEnvelopes.Add(envelopes);
    }

    public void Resumed(bool truncated) => _resumes.Add(1, new KeyValuePair<string, object?>("truncated", truncated));

    /// <summary>Messages read from the stream for a join with <c>since</c> (counted as they are read, also for joins cut short).</summary>
    public void Replayed(int messages) => _replayed.Add(messages);

    public void GapFilled() => _gapFills.Add(1);

    /// <summary>A gap fill found messages dropped by retention before it read them; the room's live members are told.</summary>
    public void GapTruncated() => _gapTruncated.Add(1);

    /// <summary>A join with <c>latest</c> was sent the newest message of <paramref name="messages"/> rooms.</summary>
    public void LatestSent(int messages) => _latest.Add(messages);

    public void FellBehind(TransportKind transport) => _catchUps.Add(1, new KeyValuePair<string, object?>("transport", transport.Label()));

    /// <summary>A stream read for a member behind: <paramref name="messages"/> read, the first stamped <paramref name="oldest"/> (ms).</summary>
    public void CatchUpRead(int messages, long oldest)
    {
        _catchUpReads.Add(1);
        _catchUpMessages.Add(messages);
        if (oldest > 0)
        {
            _behind.Record(Math.Max(0, Time.GetUtcNow().ToUnixTimeMilliseconds() - oldest) / 1000.0);
        }
    }

    public void CatchUpTruncated() => _catchUpTruncated.Add(1);

    public void NatsReconnected() => _natsReconnects.Add(1);

    /// <summary>A token or origin was refused; <paramref name="reason"/> is e.g. missing, expired, signature, origin.</summary>
    public void AuthFailed(string reason) => _authFailures.Add(1, new KeyValuePair<string, object?>("reason", reason));

    /// <summary>A limit refused something: messages, user_connections, ip_connections, worker_connections.</summary>
    public void RateLimited(string limit) => _rateLimited.Add(1, new KeyValuePair<string, object?>("limit", limit));

    /// <summary>
    /// A stored message went out in a fallback form: <paramref name="format"/> is <c>json</c>, <c>msgpack</c> or
    /// <c>all</c>; <paramref name="outcome"/> is <c>binary</c> or <c>skipped</c> (a fixed set: no client value).
    /// </summary>
    public void MessageFallback(string format, string outcome) =>
        _fallbacks.Add(1, new KeyValuePair<string, object?>("format", format), new KeyValuePair<string, object?>("outcome", outcome));
}
