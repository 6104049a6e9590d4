using Bridge.Contracts;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Connections;

/// <summary>Per-connection limits shared by every transport (section <c>Bridge:Connections</c>).</summary>
internal sealed class ConnectionOptions
{
    public const string Section = "Bridge:Connections";

    /// <summary>Default of <see cref="ConflatedQueueFrames"/>.</summary>
    public const int DefaultConflatedQueueFrames = 32;

    /// <summary>Default of <see cref="ConflatedQueueBytes"/>.</summary>
    public const long DefaultConflatedQueueBytes = 32 * 1024;

    /// <summary>Largest inbound frame in bytes; a larger one closes a WebSocket with 1009.</summary>
    public int MaxFrameBytes { get; set; } = ProtocolLimits.DefaultMaxFrameBytes;

    /// <summary>
    /// Room messages a connection may have queued for sending (its high-water mark): a member whose queue is that full
    /// reads the room from the stream until it has caught up. A quarter more is kept for answers (acks, errors,
    /// <c>room.joined</c>); a client that overflows even that (it asks and does not read) is closed with 4008.
    /// </summary>
    public int SendQueueCapacity { get; set; } = 1024;

    /// <summary>Bytes of room messages a connection may have queued (plus one frame), with a quarter more for answers (as <see cref="SendQueueCapacity"/>).</summary>
    public long SendQueueMaxBytes { get; set; } = 4L * 1024 * 1024;

    /// <summary>
    /// Frames a connection may have queued for a conflated member (<c>maxRate</c>) to add one more (its low-water
    /// mark): above it the member keeps each room's newest value pending and hands it over as soon as the connection
    /// has sent enough, so a screen that reads slowly gets fewer, fresher values instead of a backlog of old ones.
    /// A few dozen keeps the socket busy at full speed; at most <see cref="SendQueueCapacity"/>.
    /// </summary>
    public int ConflatedQueueFrames { get; set; } = DefaultConflatedQueueFrames;

    /// <summary>Bytes a connection may have queued for a conflated member to add a frame (as <see cref="ConflatedQueueFrames"/>); at most <see cref="SendQueueMaxBytes"/>.</summary>
    public long ConflatedQueueBytes { get; set; } = DefaultConflatedQueueBytes;

    /// <summary>
    /// The kernel send buffer (<c>SO_SNDBUF</c>) of a WebSocket or SSE connection once it has a conflated member, in
    /// bytes; 0 leaves the operating system's (on Linux it grows to megabytes, so values would wait there seconds
    /// behind a slow screen). Its cost: a connection's throughput is at most about this much per round trip (32 KiB
    /// per 50 ms is 640 KiB/s); the connection keeps it after the member leaves.
    /// </summary>
    public int ConflatedSendBufferBytes { get; set; } = 32 * 1024;

    /// <summary>
    /// Live messages a member holds at its seam while it reads the last of the stream up to it (joining with
    /// <c>since</c>, or catching up). Past this (or <see cref="SendQueueMaxBytes"/> of payload) it drops the hold and
    /// reads again: it is slower than the room, and the stream has every message.
    /// </summary>
    public int JoinBufferCapacity { get; set; } = 4096;

    /// <summary>
    /// How long a connection may have frames waiting with none written before it is closed with 4008 (stalled). A
    /// client that reads, however slowly, is never closed for it: it reads the room from the stream.
    /// </summary>
    public TimeSpan StallTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Stream reads (for joins with <c>since</c> and members catching up) running at once on the worker; others wait
    /// their turn. Each read brings in at most what the member's queue has room for.
    /// </summary>
    public int MaxConcurrentStreamReads { get; set; } = 64;

    /// <summary>Joins and syncs one connection may have in progress at once; further requests wait.</summary>
    public int MaxConcurrentRequests { get; set; } = 16;

    /// <summary>
    /// Publishes one WebSocket connection may have written to NATS and not yet acknowledged; with that many
    /// outstanding, its next frame is read only when an ack comes back.
    /// </summary>
    public int MaxPublishesInFlight { get; set; } = 64;

    /// <summary>
    /// Rooms one SSE stream or long-poll may name. Their resume id carries every room's position, so it must fit
    /// in a request line and a header (100 rooms of the longest names: about 15 KiB).
    /// </summary>
    public int MaxRoomsPerStream { get; set; } = 100;

    /// <summary>Rooms one connection may be in at once (its room patterns count too).</summary>
    public int MaxRoomsPerConnection { get; set; } = 1000;

    /// <summary>
    /// Room patterns (joins with wildcards, e.g. <c>devices.site-3.&gt;</c>) one connection may be in at once. Each is one
    /// NATS subscription on the worker whatever the number of rooms it matches; its gap fills and catch-ups read the
    /// stream with a wildcard filter.
    /// </summary>
    public int MaxPatternsPerConnection { get; set; } = 16;

    /// <summary>
    /// Literal tokens a joined pattern must start with before its first wildcard. The default 1 refuses a bare
    /// <c>&gt;</c> or <c>*</c> (every room of the stream) and <c>*.x</c>, and allows <c>devices.&gt;</c>; 0 allows any
    /// pattern the token grants. A broader pattern gets <c>pattern_too_broad</c>.
    /// </summary>
    public int MinPatternPrefixTokens { get; set; } = 1;

    /// <summary>
    /// Rooms one join with <c>latest</c> may return the last message of: a pattern matching more rooms (that have
    /// stored messages) is refused with <c>too_many_rooms</c>, and nothing is joined.
    /// </summary>
    public int MaxLatestRooms { get; set; } = 10_000;

    /// <summary>How long a closing connection waits for its close frame to be written and answered before it is aborted.</summary>
    public TimeSpan CloseTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>Interval of WebSocket pings; announced to clients in <c>welcome</c>.</summary>
    public TimeSpan HeartbeatInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a ping may go unanswered before the connection is dropped.</summary>
    public TimeSpan HeartbeatTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Interval of SSE comment heartbeats, which keep proxies from closing idle streams.</summary>
    public TimeSpan SseHeartbeatInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Reconnect delay suggested to EventSource clients (the SSE <c>retry:</c> field).</summary>
    public TimeSpan SseRetry { get; set; } = TimeSpan.FromSeconds(2);

    /// <summary>How long a long-poll request waits for messages before answering with none.</summary>
    public TimeSpan PollTimeout { get; set; } = TimeSpan.FromSeconds(25);

    /// <summary>Most messages one long-poll response carries; the cursor continues from the last one.</summary>
    public int PollMaxMessages { get; set; } = 500;
}

internal sealed class ConnectionOptionsValidator : IValidateOptions<ConnectionOptions>
{
    public ValidateOptionsResult Validate(string? name, ConnectionOptions o)
    {
        var failures = new List<string>();
        if (o.MaxFrameBytes is < 256 or > 16 * 1024 * 1024)
        {
            failures.Add("Bridge:Connections:MaxFrameBytes must be between 256 and 16 MiB.");
        }

        if (o.SendQueueCapacity < 1)
        {
            failures.Add("Bridge:Connections:SendQueueCapacity must be at least 1.");
        }

        if (o.SendQueueMaxBytes < o.MaxFrameBytes)
        {
            failures.Add("Bridge:Connections:SendQueueMaxBytes must be at least MaxFrameBytes.");
        }

        if (o.ConflatedQueueFrames < 1 || o.ConflatedQueueFrames > o.SendQueueCapacity)
        {
            failures.Add("Bridge:Connections:ConflatedQueueFrames must be between 1 and SendQueueCapacity.");
        }

        if (o.ConflatedQueueBytes < 1 || o.ConflatedQueueBytes > o.SendQueueMaxBytes)
        {
            failures.Add("Bridge:Connections:ConflatedQueueBytes must be between 1 and SendQueueMaxBytes.");
        }

        if (o.ConflatedSendBufferBytes is not 0 and (< 4096 or > 16 * 1024 * 1024))
        {
            failures.Add("Bridge:Connections:ConflatedSendBufferBytes must be 0 (the system's) or between 4096 and 16 MiB.");
        }

        if (o.JoinBufferCapacity < 1 || o.MaxConcurrentRequests < 1 || o.MaxPublishesInFlight < 1 || o.MaxConcurrentStreamReads < 1)
        {
            failures.Add("Bridge:Connections:JoinBufferCapacity, MaxConcurrentRequests, MaxPublishesInFlight and MaxConcurrentStreamReads must be at least 1.");
        }

        if (o.StallTimeout < TimeSpan.FromSeconds(1) || o.StallTimeout > TimeSpan.FromHours(1))
        {
            failures.Add("Bridge:Connections:StallTimeout must be between 1 second and 1 hour.");
        }

        if (o.MaxRoomsPerStream is < 1 or > 100)
        {
            failures.Add("Bridge:Connections:MaxRoomsPerStream must be between 1 and 100 (the resume id must fit in a header).");
        }

        if (o.MaxRoomsPerConnection < 1)
        {
            failures.Add("Bridge:Connections:MaxRoomsPerConnection must be at least 1.");
        }

        if (o.MaxPatternsPerConnection < 0 || o.MaxPatternsPerConnection > o.MaxRoomsPerConnection)
        {
            failures.Add("Bridge:Connections:MaxPatternsPerConnection must be between 0 (no pattern joins) and MaxRoomsPerConnection.");
        }

        if (o.MinPatternPrefixTokens is < 0 or > Contracts.RoomName.MaxTokens - 1)
        {
            failures.Add($"Bridge:Connections:MinPatternPrefixTokens must be between 0 and {Contracts.RoomName.MaxTokens - 1}.");
        }

        if (o.MaxLatestRooms is < 1 or > 100_000)
        {
            // 100,000: the subjects one stream-info page lists (nats-server), the one read that counts a pattern's rooms.
            failures.Add("Bridge:Connections:MaxLatestRooms must be between 1 and 100000.");
        }

        if (o.PollMaxMessages < 1 || o.PollTimeout <= TimeSpan.Zero || o.SseHeartbeatInterval <= TimeSpan.Zero || o.SseRetry <= TimeSpan.Zero)
        {
            failures.Add("Bridge:Connections:PollMaxMessages, PollTimeout, SseHeartbeatInterval and SseRetry must be positive.");
        }

        if (o.CloseTimeout <= TimeSpan.Zero || o.HeartbeatInterval <= TimeSpan.Zero || o.HeartbeatTimeout <= TimeSpan.Zero)
        {
            failures.Add("Bridge:Connections:CloseTimeout, HeartbeatInterval and HeartbeatTimeout must be positive.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
