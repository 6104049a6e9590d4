using Bridge.Contracts;
using Bridge.Worker.Rooms;

namespace Bridge.Worker.Protocol;

/// <summary>
/// A frame the gateway writes itself. Every frame is an envelope; a control frame's arguments travel in
/// <c>payload</c>. Payload values are strings, integers, booleans, nulls or nested dictionaries/arrays of them.
/// </summary>
internal sealed record ControlFrame(
    string Type,
    string? Room = null,
    string? Id = null,
    ulong? Seq = null,
    IReadOnlyDictionary<string, object?>? Payload = null)
{
    /// <summary>
    /// <c>room.joined</c> that reports a gap (its payload's <c>truncated</c>), kept beside the payload so the
    /// transports that report it their own way (long-poll's <c>truncated</c> list) need not read the frame back.
    /// </summary>
    public bool Truncated { get; init; }
}

/// <summary>The one place where the shape of each control frame is decided.</summary>
internal static class ControlFrames
{
    /// <summary>
    /// The first frame of a WebSocket or SSE connection. <paramref name="maxFrameBytes"/> and
    /// <paramref name="maxRoomsPerConnection"/> are the worker's limits a client sizes its batch joins by;
    /// <paramref name="frameRate"/> the frame rate limit its frames are held to (frames per second and burst), which a
    /// client paces its sends by; null where no frame is counted (SSE: the client sends over HTTP, not on the stream).
    /// </summary>
    public static ControlFrame Welcome(
        string connectionId, string serverId, TimeSpan heartbeat, string user, int maxFrameBytes, int maxRoomsPerConnection, (int PerSecond, int Burst)? frameRate = null)
    {
        var payload = new Dictionary<string, object?>
        {
            ["connectionId"] = connectionId,
            ["serverId"] = serverId,
            ["heartbeatMs"] = (long)heartbeat.TotalMilliseconds,
            ["protocol"] = Subprotocols.Version,
            ["user"] = user,
            ["maxFrameBytes"] = maxFrameBytes,
            ["maxRoomsPerConnection"] = maxRoomsPerConnection,
        };
        if (frameRate is { } rate)
        {
            payload["framesPerSecond"] = rate.PerSecond;
            payload["frameBurst"] = rate.Burst;
        }

        return new(MessageTypes.Welcome, Payload: payload);
    }

    // An ack's payload is one of two: shared, never written to (plain dictionaries, which the codecs enumerate without boxing).
    private static readonly IReadOnlyDictionary<string, object?> Stored = new Dictionary<string, object?> { ["duplicate"] = false };
    private static readonly IReadOnlyDictionary<string, object?> Duplicate = new Dictionary<string, object?> { ["duplicate"] = true };

    public static ControlFrame Ack(string room, string? id, ulong seq, bool duplicate) =>
        new(MessageTypes.Ack, room, id, seq, duplicate ? Duplicate : Stored);

    /// <summary>
    /// An <c>error</c>. <paramref name="room"/>: the room (or pattern, as the client sent it) the refused request or
    /// batch entry concerns, in the envelope's <c>room</c>; null for an error that concerns no single room, and for a
    /// name that is not a valid room or pattern (client text that failed its check is never echoed).
    /// </summary>
    public static ControlFrame Error(string code, string message, string? reference, string? room = null) =>
        new(MessageTypes.Error, room, Payload: new Dictionary<string, object?>
        {
            ["code"] = code,
            ["message"] = message,
            ["ref"] = reference,
        });

    // Shared, never written to; a plain dictionary, which the codecs enumerate without boxing.
    private static readonly IReadOnlyDictionary<string, object?> JoinedLive = new Dictionary<string, object?> { ["replayed"] = 0, ["truncated"] = false };

    /// <summary>The payload every live join's <c>room.joined</c> shares: nothing replayed, not truncated.</summary>
    public static IReadOnlyDictionary<string, object?> LiveJoinedPayload => JoinedLive;

    /// <summary>
    /// True for a live join's <c>room.joined</c> (<see cref="RoomJoined"/> with nothing replayed, not truncated, no
    /// <c>latest</c>): its payload is <see cref="LiveJoinedPayload"/>, so a codec may write the frame from its room and seq.
    /// </summary>
    public static bool IsLiveJoined(ControlFrame frame) =>
        ReferenceEquals(frame.Payload, JoinedLive) && frame.Room is not null && frame.Seq is not null && frame.Id is null &&
        frame.Type == MessageTypes.RoomJoined;

    /// <summary>
    /// The room is joined and live. <paramref name="seq"/> is the connection's position in the room: every message
    /// after it is (or will be) delivered, so it is the <c>since</c> to resume from if nothing newer arrives.
    /// <paramref name="latest"/>: for a join with <c>latest</c>, the number of latest messages (one per room) sent before it.
    /// </summary>
    public static ControlFrame RoomJoined(string room, ulong seq, int replayed, bool truncated, int? latest = null)
    {
        if (replayed == 0 && !truncated && latest is null)
        {
            // A live join's (most joins'): one payload for all of them.
            return new(MessageTypes.RoomJoined, room, Seq: seq, Payload: JoinedLive);
        }

        var payload = new Dictionary<string, object?>
        {
            ["replayed"] = replayed,
            ["truncated"] = truncated,
        };
        if (latest is { } count)
        {
            payload["latest"] = count;
        }

        return new(MessageTypes.RoomJoined, room, Seq: seq, Payload: payload) { Truncated = truncated };
    }

    /// <summary>A room's latest messages (each a complete envelope) and the position to resume live from.</summary>
    public static ControlFrame RoomState(string room, ulong seq, IReadOnlyList<RoomMessage> messages) =>
        new(MessageTypes.RoomState, room, Seq: seq, Payload: new Dictionary<string, object?>
        {
            ["messages"] = messages,
        });

    public static ControlFrame RoomLeft(string room) => new(MessageTypes.RoomLeft, room);

    /// <summary>The server left the room for the client: the refreshed token no longer grants it.</summary>
    public static ControlFrame RoomLeftForbidden(string room) =>
        new(MessageTypes.RoomLeft, room, Payload: new Dictionary<string, object?> { ["reason"] = ErrorCodes.Forbidden });

    /// <summary>Everyone in a presence room, on every worker.</summary>
    public static ControlFrame PresenceState(string room, string? id, IReadOnlyList<PresenceMember> members) =>
        new(MessageTypes.PresenceState, room, id, Payload: new Dictionary<string, object?>
        {
            ["members"] = members.Select(m => (object?)new Dictionary<string, object?>
            {
                ["user"] = m.User,
                ["connections"] = m.Connections,
                ["since"] = m.Since,
            }).ToList(),
        });

    /// <summary>The worker is shutting down: reconnect (to any worker) after <paramref name="reconnectAfterMs"/> and resume.</summary>
    public static ControlFrame ServerShutdown(int reconnectAfterMs) =>
        new(MessageTypes.ServerShutdown, Payload: new Dictionary<string, object?> { ["reconnect_after_ms"] = reconnectAfterMs });

    /// <summary>The connection's token was replaced; <paramref name="expires"/> is its new <c>exp</c> (unix seconds).</summary>
    public static ControlFrame AuthRefreshed(string? id, DateTimeOffset? expires) =>
        new(MessageTypes.AuthRefreshed, Id: id, Payload: new Dictionary<string, object?> { ["exp"] = expires?.ToUnixTimeSeconds() });

    /// <summary>The answer to <c>bridge.ping</c>: its id, nothing else.</summary>
    public static ControlFrame Pong(string id) => new(MessageTypes.Pong, Id: id);

    /// <summary>
    /// True for a room message that cannot be encoded for <paramref name="codec"/>'s format at all: a list of
    /// messages (room.state) leaves it out, as the live dispatch and a replay do.
    /// </summary>
    public static bool IsSkipped(object? item, IFrameCodec codec) => item is RoomMessage message && message.GetFrame(codec) is null;

    /// <summary>
    /// Encodes (and caches) the room messages a control frame carries before the frame itself is written:
    /// a codec writes one frame at a time into its scratch buffer, so nested encoding must happen first.
    /// </summary>
    public static void EncodeNestedMessages(object? value, IFrameCodec codec)
    {
        switch (value)
        {
            case RoomMessage message:
                message.GetFrame(codec);
                break;
            case Dictionary<string, object?> map:
                // Most payloads: enumerated without boxing an enumerator.
                foreach (var item in map.Values)
                {
                    EncodeNestedMessages(item, codec);
                }

                break;
            case IReadOnlyDictionary<string, object?> map:
                foreach (var item in map.Values)
                {
                    EncodeNestedMessages(item, codec);
                }

                break;
            case System.Collections.IEnumerable list and not string:
                foreach (var item in list)
                {
                    EncodeNestedMessages(item, codec);
                }

                break;
        }
    }
}
