using System.Text.Json;
using Bridge.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.Client;

/// <summary>Wire format of the WebSocket connection (its subprotocol).</summary>
public enum BridgeFormat
{
    /// <summary><c>bridge.v1.json</c>: text frames, one JSON envelope each.</summary>
    Json,

    /// <summary><c>bridge.v1.msgpack</c>: binary frames, one MessagePack map each.</summary>
    MessagePack,
}

/// <summary>
/// Settings of a <see cref="BridgeClient"/>. Checked once, when the client is created: a value out of range makes
/// the constructor throw <see cref="ArgumentException"/> naming it. The client reads them then; later changes do nothing.
/// </summary>
public sealed class BridgeClientOptions
{
    /// <summary>
    /// The worker to connect to: <c>ws://host:port/ws</c>, or the worker's base URL (<c>http://host:port</c>,
    /// mapped to <c>ws://host:port/ws</c>). Ignored when <see cref="Uris"/> or <see cref="UriProvider"/> is set.
    /// </summary>
    public Uri? Uri { get; set; }

    /// <summary>Several workers, tried in turn: every connection attempt takes the next one, so a client whose
    /// worker went away (close 1012) reconnects to another.</summary>
    public IReadOnlyList<Uri>? Uris { get; set; }

    /// <summary>Asked for the URL before every connection attempt (service discovery, a load balancer's
    /// address...). Wins over <see cref="Uri"/> and <see cref="Uris"/>.</summary>
    public Func<CancellationToken, ValueTask<Uri>>? UriProvider { get; set; }

    /// <summary>Subprotocol: JSON (default) or MessagePack. Payloads are JSON values to the application either way.</summary>
    public BridgeFormat Format { get; set; } = BridgeFormat.Json;

    /// <summary>
    /// True (default): the client offers the batch subprotocol of <see cref="Format"/> first (<c>bridge.v1.json-batch</c>,
    /// <c>bridge.v1.msgpack-batch</c>), then the plain one, so a worker that speaks it sends the envelopes queued for
    /// the client several per WebSocket message (fewer receives during a replay or a burst), and an older worker still
    /// connects. Nothing changes for the application: messages and events arrive one by one, in the same order. False:
    /// only the plain subprotocol is offered.
    /// </summary>
    public bool ReceiveBatches { get; set; } = true;

    /// <summary>
    /// Returns the access token (a JWT, sent as the <c>access_token</c> query parameter), or null for none. Asked
    /// before the first connection, when the server refuses the token (close 4001/4003, HTTP 401/403: only a token
    /// different from the current one brings a reconnect, otherwise the client closes), and
    /// <see cref="RefreshBeforeExpiry"/> before the token's <c>exp</c>.
    /// </summary>
    public Func<CancellationToken, ValueTask<string?>>? TokenProvider { get; set; }

    /// <summary>Renew the token this long before its <c>exp</c> and send it with <c>auth.refresh</c>, so the
    /// connection is not closed with 4001. <see cref="TimeSpan.Zero"/> turns renewal off. Default 30 s.</summary>
    public TimeSpan RefreshBeforeExpiry { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Ceiling of the first retry's random delay. Attempt n waits uniform(0, min(max, min·2ⁿ)). Default 0.5 s.</summary>
    public TimeSpan ReconnectMinDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Largest delay between reconnect attempts. Default 20 s.</summary>
    public TimeSpan ReconnectMaxDelay { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>Most publishes waiting for their ack (queued while disconnected, or in flight); beyond it
    /// <see cref="BridgeClient.PublishAsync{T}"/> throws <see cref="BridgeException"/> <c>queue_full</c>. Default 1000.</summary>
    public int MaxQueuedPublishes { get; set; } = 1000;

    /// <summary>
    /// Messages held per room for <see cref="RoomSubscription.ReadAllAsync"/> that the application has not read yet
    /// (at least 1; default 1024). The buffer is bounded and never drops: when one room's buffer is full the client
    /// stops reading its socket until the application takes a message, so the server sends at the application's
    /// pace (every room of the client waits: one socket, in order). A backlog of any length (a resume, a burst)
    /// therefore costs at most this many messages per room on the client, plus the socket's buffers. No client-side
    /// timeout runs while the socket is delivering: <see cref="AckTimeout"/> and <see cref="OpenTimeout"/> count only
    /// the time the socket is silent, and so does <see cref="KeepAliveInterval"/>. An application that stops reading
    /// altogether for longer than the server's stall limit (4008, 30 s by default) or its WebSocket heartbeat loses the
    /// connection; the client resumes from <see cref="RoomSubscription.Position"/> when it reads again, with nothing lost
    /// or repeated.
    /// </summary>
    public int RoomBufferCapacity { get; set; } = 1024;

    /// <summary>A publish (or request) without an answer after this long, while the socket has also said nothing for
    /// this long, is taken as a dead connection: the client reconnects and sends it again with the same id. An answer
    /// queued behind a backlog that is still arriving does not count as missing. Default 20 s.</summary>
    public TimeSpan AckTimeout { get; set; } = TimeSpan.FromSeconds(20);

    /// <summary>A connection attempt that has not opened and said <c>welcome</c> after this long counts as failed;
    /// after <c>welcome</c>, the <c>room.joined</c> of rooms joined live must come before the socket has been
    /// silent this long. Default 10 s.</summary>
    public TimeSpan OpenTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// <c>publish_failed</c> answers retried (same id) before the publish fails. Default 5. A <c>rate_limited</c> answer
    /// is not a try (the frame was not acted on): it is retried up to 20 times, paced to the worker's frame rate.
    /// </summary>
    public int MaxPublishAttempts { get; set; } = 5;

    /// <summary>Largest frame the client sends (the worker's <c>MaxFrameBytes</c>, default 64 KiB), or the worker's own
    /// limit when its <c>welcome</c> announces a smaller <c>maxFrameBytes</c> (a larger frame: it closes with 1009).
    /// A larger publish throws <c>frame_too_big</c> and is never sent: before it is queued, or (queued before the
    /// welcome said the worker's limit) when it is due. Batch joins (docs/protocol.md §4) stay within it too.</summary>
    public int MaxFrameBytes { get; set; } = ProtocolLimits.DefaultMaxFrameBytes;

    /// <summary>
    /// How a silent dead connection (a pulled cable, a frozen peer) is noticed. When the socket has said nothing for
    /// this long while the client was waiting to read it, the client sends <c>bridge.ping</c>; when it has said nothing
    /// for twice this long, the connection is taken as dead and the client reconnects (and resumes). Any frame ends the
    /// silence. Only the time the client waits on the socket counts: while it holds the socket back because the
    /// application has not taken a room's messages (<see cref="RoomBufferCapacity"/>), nothing counts, so a backlog
    /// read slowly, however slowly, keeps its connection (the <c>bridge.pong</c> then comes after the backlog, which
    /// is proof enough). The client also sends an unsolicited WebSocket pong this often (no WebSocket ping, no pong
    /// deadline), for proxies' idle timers. <see cref="TimeSpan.Zero"/> turns both off. Default 15 s.
    /// </summary>
    public TimeSpan KeepAliveInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Serializer options for <see cref="BridgeClient.PublishAsync{T}"/> payloads (default: the web defaults,
    /// camelCase, which <see cref="BridgeMessage.PayloadAs{T}"/> also uses unless given other options).</summary>
    public JsonSerializerOptions JsonSerializerOptions { get; set; } = new(JsonSerializerDefaults.Web);

    /// <summary>Clock for delays and timeouts; tests pass a fake one.</summary>
    public TimeProvider TimeProvider { get; set; } = TimeProvider.System;

    /// <summary>
    /// Where the client logs (category <c>Bridge.Client.BridgeClient</c>, event ids 7001-7021): connects and
    /// reconnects with their reason and delay, dead connections, resumes and truncated rooms, token renewals, refused
    /// publishes and joins, closing for good. Default: no logging.
    /// </summary>
    public ILoggerFactory LoggerFactory { get; set; } = NullLoggerFactory.Instance;

    /// <summary>Random source in [0, 1) for the backoff jitter; tests pass a fixed one.</summary>
    public Func<double> Random { get; set; } = System.Random.Shared.NextDouble;

    internal void Validate()
    {
        if (UriProvider is null && (Uris is null || Uris.Count == 0) && Uri is null)
        {
            throw new ArgumentException("BridgeClientOptions: set Uri, Uris or UriProvider.");
        }

        if (ReconnectMinDelay <= TimeSpan.Zero || ReconnectMaxDelay < ReconnectMinDelay)
        {
            throw new ArgumentException("BridgeClientOptions: need 0 < ReconnectMinDelay <= ReconnectMaxDelay.");
        }

        if (MaxQueuedPublishes < 1 || RoomBufferCapacity < 1 || MaxPublishAttempts < 1 || MaxFrameBytes < 256)
        {
            throw new ArgumentException("BridgeClientOptions: MaxQueuedPublishes, RoomBufferCapacity and MaxPublishAttempts must be at least 1, MaxFrameBytes at least 256.");
        }

        if (AckTimeout <= TimeSpan.Zero || OpenTimeout <= TimeSpan.Zero || RefreshBeforeExpiry < TimeSpan.Zero || KeepAliveInterval < TimeSpan.Zero)
        {
            throw new ArgumentException("BridgeClientOptions: AckTimeout and OpenTimeout must be positive; RefreshBeforeExpiry and KeepAliveInterval not negative.");
        }

        ArgumentNullException.ThrowIfNull(JsonSerializerOptions);
        ArgumentNullException.ThrowIfNull(TimeProvider);
        ArgumentNullException.ThrowIfNull(LoggerFactory);
        ArgumentNullException.ThrowIfNull(Random);
    }
}
