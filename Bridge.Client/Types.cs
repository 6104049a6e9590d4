using System.Text.Json;

namespace Bridge.Client;

/// <summary>Connection state of a <see cref="BridgeClient"/>.</summary>
public enum ConnectionState
{
    /// <summary>Created; <see cref="BridgeClient.ConnectAsync"/> not called yet.</summary>
    Idle,

    /// <summary>The first connection is being made.</summary>
    Connecting,

    /// <summary>Connected (the server said <c>welcome</c>).</summary>
    Open,

    /// <summary>The connection ended; waiting for, or making, the next attempt.</summary>
    Reconnecting,

    /// <summary>For good: disposed, or the server refused the token and no new one was given.</summary>
    Closed,
}

/// <summary>A state change, with why the last connection ended and when the next attempt comes.</summary>
/// <param name="state">The new state.</param>
/// <param name="previous">The state before the change.</param>
public sealed class ConnectionStateChangedEventArgs(ConnectionState state, ConnectionState previous) : EventArgs
{
    /// <summary>The new state.</summary>
    public ConnectionState State { get; } = state;

    /// <summary>The state before the change.</summary>
    public ConnectionState Previous { get; } = previous;

    /// <summary><see cref="ConnectionState.Reconnecting"/>: the attempt number (0 for the first retry after a drop).</summary>
    public int Attempt { get; init; }

    /// <summary><see cref="ConnectionState.Reconnecting"/>: the wait before the next attempt.</summary>
    public TimeSpan? Delay { get; init; }

    /// <summary>The WebSocket close code of the connection that ended, if the server sent one (docs/protocol.md §8:
    /// 1012 restart, 4001 token expired, 4008 slow consumer...).</summary>
    public int? CloseCode { get; init; }

    /// <summary>The HTTP status of a refused upgrade (401, 429, 503...).</summary>
    public int? HttpStatus { get; init; }

    /// <summary>The server's close reason, or the error text of a failed attempt (e.g. <c>ack timeout</c> when the
    /// client dropped a connection that looked dead).</summary>
    public string? Reason { get; init; }

    /// <summary><see cref="ConnectionState.Open"/>: the worker's URL.</summary>
    public Uri? Uri { get; init; }
}

/// <summary>A room message: an application message, or a gateway message stored in the room (<c>presence.update</c>).</summary>
public sealed class BridgeMessage
{
    /// <summary>The message type (<c>chat.message</c>...; docs/protocol.md §2), as the publisher gave it.</summary>
    public required string Type { get; init; }

    /// <summary>The room it was stored in: for a pattern join, the concrete room the pattern matched (its <c>room</c>).</summary>
    public required string Room { get; init; }

    /// <summary>The publisher's message id, when it gave one.</summary>
    public string? Id { get; init; }

    /// <summary>The stream sequence (unsigned 64-bit, from the server's <c>seq</c>): increases within a room, not
    /// contiguous (other rooms' messages share the stream). What a resume's <c>since</c> takes.</summary>
    public ulong Seq { get; init; }

    /// <summary>
    /// When the server stored the message (its <c>ts</c>, unix milliseconds, UTC), to the millisecond. The Unix epoch
    /// (<see cref="DateTimeOffset.UnixEpoch"/>) when the frame has no <c>ts</c> or one that is not a 64-bit integer
    /// (a worker always sends one; a value outside <see cref="DateTimeOffset"/>'s range is clamped to it): the message is
    /// delivered all the same, with its <see cref="Seq"/>.
    /// </summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>The sender (token <c>sub</c>, <c>anonymous</c>, or a backend's name); null when unknown.</summary>
    public string? From { get; init; }

    /// <summary>The JSON payload; null when the message has none or a binary one.</summary>
    public JsonElement? Payload { get; init; }

    /// <summary>The binary payload (<c>enc: base64</c> in JSON, <c>bin</c> in MessagePack); null otherwise.</summary>
    public ReadOnlyMemory<byte>? BinaryPayload { get; init; }

    /// <summary>
    /// <see cref="BridgeFormat.MessagePack"/> connections: the non-binary payload exactly as the server sent it, one
    /// MessagePack value (what a MessagePack publisher sent, byte for byte, extension types such as timestamps
    /// included); <see cref="Payload"/> is its JSON rendering (docs/protocol.md §3), or null when the value has none
    /// (a backend's NaN or non-string map key). Null on JSON connections and for binary payloads.
    /// </summary>
    public ReadOnlyMemory<byte>? MessagePackPayload { get; init; }

    /// <summary>
    /// The JSON payload deserialized as <typeparamref name="T"/> with <paramref name="options"/> (default: the web
    /// defaults, camelCase); default(<typeparamref name="T"/>) when there is none. Throws <see cref="JsonException"/>
    /// when the payload does not fit <typeparamref name="T"/>.
    /// </summary>
    public T? PayloadAs<T>(JsonSerializerOptions? options = null) =>
        Payload is { } payload ? payload.Deserialize<T>(options ?? JsonSerializerOptions.Web) : default;

    /// <summary>One line for logs: type, room, seq, id, sender and the payload (JSON text, or its length when binary).</summary>
    public override string ToString() => $"{Type} {Room} seq={Seq} id={Id} from={From} payload={Payload?.GetRawText() ?? (BinaryPayload is { } b ? $"{b.Length} bytes" : "none")}";
}

/// <summary>A stored publish.</summary>
/// <param name="Room">The room it was stored in.</param>
/// <param name="Id">The publish id (generated when the caller gave none), reused on every retry.</param>
/// <param name="Seq">The stream sequence of the stored message (the <c>ack</c>'s <c>seq</c>).</param>
/// <param name="Duplicate">True when the server had already stored a message with this id (a retry): <paramref name="Seq"/> is the original's.</param>
public sealed record Ack(string Room, string Id, ulong Seq, bool Duplicate);

/// <summary>
/// How <see cref="BridgeClient.JoinAsync(string, RoomJoinOptions, CancellationToken)"/> joins a room or a room pattern
/// (docs/protocol.md §4). The default joins live: every message stored from now on, once each, in <c>seq</c> order.
/// </summary>
public sealed record RoomJoinOptions
{
    /// <summary>The largest <see cref="MaxRate"/> a worker accepts: 1,000 messages per second per room.</summary>
    public const double MaxRateLimit = 1000;

    /// <summary>
    /// Resume from this stream <c>seq</c> (unsigned 64-bit; 0 replays everything the server still holds), a position the
    /// application kept (<see cref="RoomSubscription.Position"/>): every later message of the room, or of every room
    /// the pattern matches, first, in stream order. Null (the default): join live. Wins over <see cref="Latest"/>;
    /// cannot be combined with <see cref="MaxRate"/>.
    /// </summary>
    public ulong? Since { get; init; }

    /// <summary>
    /// Before <c>room.joined</c>, deliver the last stored message of the room, or of every room the pattern matches
    /// (one per room, in no <c>seq</c> order; rooms that hold nothing send none), then live. The worker reads them in
    /// one batched read and refuses a join that would return more than its <c>Bridge:Connections:MaxLatestRooms</c> (default
    /// 10,000) with <c>too_many_rooms</c>: join a narrower pattern. Applies to a join without a position only: a resume
    /// after a reconnect replays every message after the position instead. Default false.
    /// </summary>
    public bool Latest { get; init; }

    /// <summary>
    /// Conflation: at most this many messages per second per room (for a pattern, per concrete room), above 0 and at
    /// most <see cref="MaxRateLimit"/> (fractions allowed: 0.5 is one every 2 s). The member always gets the newest
    /// message (older pending ones are replaced, never queued) and the last of a burst always comes, so it never lags.
    /// Such a join has no <see cref="RoomSubscription.Position"/>: its messages are not in <c>seq</c> order across
    /// rooms and are not de-duplicated. After a reconnect it joins again with <c>since</c> = its last <c>room.joined</c>
    /// <c>seq</c> (for a room, not a pattern: the <c>seq</c> of the last value delivered, if later), and the worker sends
    /// each room's newest message after it (docs/protocol.md §4, conflation) instead of a replay: only values newer than
    /// those delivered, except that the rooms of a pattern that changed since its last <c>room.joined</c> send their
    /// newest value again. Null (the default): every message.
    /// </summary>
    public double? MaxRate { get; init; }

    /// <summary>True when <see cref="MaxRate"/> is set.</summary>
    internal bool IsConflated => MaxRate is not null;
}

/// <summary>What a <c>room.joined</c> said (docs/protocol.md §4).</summary>
/// <param name="Room">The room, or the room pattern, as joined.</param>
/// <param name="Seq">The room position (a stream <c>seq</c>): every later message of the room is or will be delivered.</param>
/// <param name="Replayed">Messages the join it answers replayed before it (a resume), 0 for a live join. A resume the
/// server answered <c>unavailable</c> part way through its replay is joined again from the client's position: the
/// <c>room.joined</c> that follows counts only what that join replayed.</param>
/// <param name="Truncated">The client's position is no longer stored (retention dropped it, on a resume or while
/// the room stayed joined): messages may be missing. Rebuild the room's state with <see cref="BridgeClient.SyncAsync"/>.</param>
public sealed record RoomJoinInfo(string Room, ulong Seq, int Replayed, bool Truncated)
{
    /// <summary>For a join with <see cref="RoomJoinOptions.Latest"/>: how many latest messages (one per room that holds
    /// any) came before this <c>room.joined</c> (its <c>latest</c>); 0 otherwise.</summary>
    public int Latest { get; init; }
}

/// <summary>The answer to <c>room.sync</c>: the room's latest messages, oldest first, and its position.</summary>
/// <param name="Room">The room.</param>
/// <param name="Seq">The room's position (a stream <c>seq</c>; 0 when the room holds nothing): join with <c>since</c> = it to continue from there.</param>
/// <param name="Messages">At most the requested limit (1-100) of the room's latest stored messages, oldest first.</param>
public sealed record RoomState(string Room, ulong Seq, IReadOnlyList<BridgeMessage> Messages);

/// <summary>One user present in a room, over all workers (an entry of <c>presence.state</c>).</summary>
/// <param name="User">The user (the token's <c>sub</c>, or <c>anonymous</c>).</param>
/// <param name="Connections">Their connections in the room, summed over workers and tabs.</param>
/// <param name="Since">When the earliest of them joined (from unix milliseconds, UTC).</param>
public sealed record PresenceMember(string User, int Connections, DateTimeOffset Since);

/// <summary>An <c>error</c> frame from the server, or a client-side refusal (<c>queue_full</c>, <c>closed</c>...).</summary>
public sealed class BridgeException : Exception
{
    /// <summary>An exception with <see cref="Code"/> <c>error</c> and a generic message.</summary>
    public BridgeException()
        : this("error", "bridge error")
    {
    }

    /// <summary>An exception with <see cref="Code"/> <c>error</c> and <paramref name="message"/>.</summary>
    public BridgeException(string message)
        : this("error", message)
    {
    }

    /// <summary>An exception with <see cref="Code"/> <c>error</c>, <paramref name="message"/> and its cause.</summary>
    public BridgeException(string message, Exception innerException)
        : base(message, innerException)
    {
        Code = "error";
        Detail = message;
    }

    /// <summary>An exception with <paramref name="code"/>; <see cref="Exception.Message"/> is "code: message".</summary>
    /// <param name="code">See <see cref="Code"/>.</param>
    /// <param name="message">What happened, for people.</param>
    /// <param name="reference">See <see cref="Reference"/>.</param>
    public BridgeException(string code, string message, string? reference = null)
        : base($"{code}: {message}")
    {
        Code = code;
        Detail = message;
        Reference = reference;
    }

    /// <summary>An error code of docs/protocol.md §8, or a client one: <c>queue_full</c>, <c>frame_too_big</c>,
    /// <c>duplicate_id</c>, <c>closed</c>, <c>disconnected</c>, <c>left</c>, <c>unauthorized</c>,
    /// <c>overlapping_join</c>.</summary>
    public string Code { get; }

    /// <summary>The id of the refused frame (the error's <c>ref</c>, or the publish id), when known.</summary>
    public string? Reference { get; }

    /// <summary>The message without the code.</summary>
    internal string Detail { get; }

    /// <summary>A new exception with the same code and message, for another caller (an exception is thrown once).</summary>
    internal BridgeException Again(string? reference = null) => new(Code, Detail, reference);
}

/// <summary>
/// One room's answer to <see cref="BridgeClient.JoinManyAsync"/>: exactly one of <see cref="Subscription"/> and
/// <see cref="Error"/> is set.
/// </summary>
/// <param name="Room">The room or room pattern, as given to <c>JoinManyAsync</c>.</param>
/// <param name="Subscription">The joined room's subscription (the held one when the name was joined already); null when
/// the room was refused.</param>
/// <param name="Error">The room's own refusal (<see cref="BridgeException.Code"/>: the server's <c>forbidden</c>,
/// <c>too_many_rooms</c>, <c>pattern_too_broad</c>, <c>unavailable</c> or <c>rate_limited</c> after 5 tries..., or the
/// client's <c>overlapping_join</c> or <c>left</c>); null when the room was joined. A refused room is not held.</param>
public sealed record RoomJoinResult(string Room, RoomSubscription? Subscription, BridgeException? Error)
{
    /// <summary>True when the room was joined (<see cref="Subscription"/> is set).</summary>
    public bool IsJoined => Subscription is not null;
}
