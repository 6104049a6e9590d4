using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// Every log of Bridge.Client, with its event id: the one list of them (7001-7099, apart from the worker's ids).
/// Category <c>Bridge.Client.BridgeClient</c>, from <see cref="BridgeClientOptions.LoggerFactory"/>.
/// </summary>
internal static partial class ClientLog
{
    [LoggerMessage(EventId = 7001, Level = LogLevel.Debug, Message = "Connecting to {Uri}")]
    public static partial void Connecting(this ILogger logger, Uri uri);

    [LoggerMessage(EventId = 7002, Level = LogLevel.Information, Message = "Connected to {Uri}: worker {ServerId}, connection {ConnectionId}, user {User}")]
    public static partial void Connected(this ILogger logger, Uri uri, string? serverId, string? connectionId, string? user);

    [LoggerMessage(EventId = 7003, Level = LogLevel.Information, Message = "Connection ended (close {CloseCode}, HTTP {HttpStatus}): {Reason}; reconnecting in {DelayMs} ms (attempt {Attempt})")]
    public static partial void Reconnecting(this ILogger logger, int? closeCode, int? httpStatus, string? reason, long delayMs, int attempt);

    [LoggerMessage(EventId = 7004, Level = LogLevel.Warning, Message = "The connection to {Uri} looks dead and is dropped: {Reason}")]
    public static partial void ConnectionDead(this ILogger logger, Uri uri, string reason);

    [LoggerMessage(EventId = 7005, Level = LogLevel.Debug, Message = "Room {Room} joined at seq {Seq} (replayed {Replayed})")]
    public static partial void RoomJoined(this ILogger logger, string room, ulong seq, int replayed);

    [LoggerMessage(EventId = 7006, Level = LogLevel.Warning, Message = "Room {Room} at seq {Seq}: the server no longer holds every message after the client's position (truncated); rebuild its state with SyncAsync")]
    public static partial void RoomTruncated(this ILogger logger, string room, ulong seq);

    [LoggerMessage(EventId = 7007, Level = LogLevel.Warning, Message = "Join of room {Room} refused ({Code}); retry {Attempt} in {DelayMs} ms")]
    public static partial void JoinRetry(this ILogger logger, string room, string code, int attempt, long delayMs);

    [LoggerMessage(EventId = 7008, Level = LogLevel.Warning, Message = "Room {Room} ended: {Code}")]
    public static partial void RoomEnded(this ILogger logger, string room, string code);

    [LoggerMessage(EventId = 7009, Level = LogLevel.Warning, Message = "Publish {Id} to room {Room} refused ({Code}); retry {Attempt} in {DelayMs} ms with the same id")]
    public static partial void PublishRetry(this ILogger logger, string id, string room, string code, int attempt, long delayMs);

    [LoggerMessage(EventId = 7010, Level = LogLevel.Warning, Message = "Publish {Id} to room {Room} failed: {Code}")]
    public static partial void PublishFailed(this ILogger logger, string id, string room, string code);

    [LoggerMessage(EventId = 7011, Level = LogLevel.Information, Message = "The server refused the token (close {CloseCode}, HTTP {HttpStatus}); asking the token provider for a new one")]
    public static partial void TokenRefused(this ILogger logger, int? closeCode, int? httpStatus);

    [LoggerMessage(EventId = 7012, Level = LogLevel.Debug, Message = "Token renewed on the open connection (auth.refresh)")]
    public static partial void TokenRefreshed(this ILogger logger);

    [LoggerMessage(EventId = 7013, Level = LogLevel.Warning, Message = "Token renewal failed; the connection keeps its token until the server closes it with 4001")]
    public static partial void TokenRefreshFailed(this ILogger logger, Exception exception);

    [LoggerMessage(EventId = 7014, Level = LogLevel.Error, Message = "The client closed for good: {Code} {Detail}")]
    public static partial void ClosedForGood(this ILogger logger, string code, string detail);

    [LoggerMessage(EventId = 7015, Level = LogLevel.Debug, Message = "Skipped a {Bytes}-byte frame from the server that this client cannot read")]
    public static partial void FrameSkipped(this ILogger logger, int bytes, Exception exception);

    [LoggerMessage(EventId = 7016, Level = LogLevel.Warning, Message = "An application handler of {Event} threw; the client goes on")]
    public static partial void HandlerFailed(this ILogger logger, string @event, Exception exception);

    [LoggerMessage(EventId = 7017, Level = LogLevel.Warning, Message = "Connection attempt failed before it opened: {Reason}")]
    public static partial void AttemptFailed(this ILogger logger, string reason, Exception? exception);

    [LoggerMessage(EventId = 7018, Level = LogLevel.Information, Message = "Batch join {Id} answered {Code} naming no room; its {Pending} rooms not joined yet are {Action}")]
    public static partial void BatchJoinFailed(this ILogger logger, string id, string code, int pending, string action);

    [LoggerMessage(EventId = 7019, Level = LogLevel.Debug, Message = "Batch join {Id} answered {Code} naming no room again; {Retried} of its {Pending} rooms not joined yet are retried after a backoff")]
    public static partial void BatchJoinFailedAgain(this ILogger logger, string id, string code, int pending, int retried);

    [LoggerMessage(EventId = 7020, Level = LogLevel.Debug, Message = "Skipped element {Index} of a {Bytes}-byte array from the server that this client cannot read; the other elements are kept")]
    public static partial void ElementSkipped(this ILogger logger, int index, int bytes, Exception exception);

    [LoggerMessage(EventId = 7021, Level = LogLevel.Debug, Message = "The socket has been silent for {SilentMs} ms while the client waited on it: sent bridge.ping {Id}")]
    public static partial void PingSent(this ILogger logger, long silentMs, string id);
}
