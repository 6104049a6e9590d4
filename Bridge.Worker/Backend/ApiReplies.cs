namespace Bridge.Worker.Backend;

// The answers of the backend API (docs/protocol.md §13), serialized with ApiJson.Options: snake_case, nulls left out.
// Times are unix milliseconds, durations seconds.

internal sealed record PublishReply(string Room, string? Id, ulong Seq, bool Duplicate);

/// <summary>One room of a broadcast: its seq, or why it was not stored.</summary>
internal sealed record BroadcastRoomResult(string Room, ulong? Seq = null, bool? Duplicate = null, ApiError? Error = null);

internal sealed record ApiError(string Code, string Message);

internal sealed record BroadcastReply(string? Id, int Stored, int Failed, IReadOnlyList<BroadcastRoomResult> Results);

/// <summary>
/// A page of a room's history: envelopes as clients receive them, oldest first. <see cref="More"/> says whether
/// stored messages follow the page (within <c>to_seq</c>); ask again with <c>after_seq</c> = <see cref="NextAfterSeq"/>.
/// </summary>
internal sealed record HistoryReply(string Room, ulong LastSeq, bool More, ulong? NextAfterSeq, IReadOnlyList<RawJson> Messages);

internal sealed record PresenceMemberReply(string User, int Connections, long Since);

internal sealed record PresenceReply(string Room, IReadOnlyList<PresenceMemberReply> Members);

/// <summary>An active room: connections in it (summed over workers) and on how many workers it is active.</summary>
internal sealed record RoomEntry(string Room, int Connections, int Workers);

internal sealed record RoomsReply(string Scope, bool Truncated, IReadOnlyList<RoomEntry> Rooms, IReadOnlyList<string> Workers, IReadOnlyList<string> Missing);

internal sealed record InfoReply(string Scope, IReadOnlyList<WorkerInfo> Workers, IReadOnlyList<string> Missing);

internal sealed record DisconnectReply(string User, int Connections, IReadOnlyList<string> Workers, IReadOnlyList<string> Missing);

internal sealed record BanReply(
    string User, long BannedAt, long ExpiresAt, string? Reason, int Connections, IReadOnlyList<string> Workers, IReadOnlyList<string> Missing);

internal sealed record UnbanReply(string User, int Removed, IReadOnlyList<string> Workers, IReadOnlyList<string> Missing);

// What one worker answers to a cluster-wide request (bridge.worker.<op>).

internal sealed record ConnectionCounts(int Total, int Websocket, int Sse);

internal sealed record NatsInfo(
    string State, string? ServerId, string? ServerName, string? ServerVersion, string? Cluster, long? MaxPayload, bool? Jetstream);

/// <summary>One worker: identity, version, uptime, load, and the NATS server it is connected to.</summary>
internal sealed record WorkerInfo(
    string Id, string Version, long StartedAt, double UptimeSeconds, ConnectionCounts Connections, int Rooms, int Bans, NatsInfo Nats);

internal sealed record WorkerRooms(string Worker, bool Truncated, IReadOnlyList<LocalRoom> Rooms);

internal sealed record LocalRoom(string Room, int Connections);

internal sealed record WorkerDisconnects(string Worker, int Connections);

/// <summary>Asks every worker to close a user's connections (those whose token predates <see cref="Ban"/>, when set).</summary>
internal sealed record DisconnectOrder(string User, string? Reason, Ban? Ban);
