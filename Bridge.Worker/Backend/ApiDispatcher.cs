using Bridge.Contracts;
using Bridge.Worker.Handlers;
using Bridge.Worker.Protocol;
using Bridge.Worker.Publishing;
using Bridge.Worker.Security;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Backend;

/// <summary>
/// The edge of the backend API, shared by both adapters: reads an operation's body (a JSON object, or a MessagePack
/// map with the same keys, <see cref="ApiArgs.Parse"/>) into a checked request
/// (every field validated here, once), applies the caller's rate limit, runs the operation on
/// <see cref="BackendApi"/> and serializes the answer. Whatever the body, the answer is a status and a JSON body:
/// the result, or <c>{code, message}</c>.
/// </summary>
internal sealed partial class ApiDispatcher(
    BackendApi api,
    ApiRateLimiter limiter,
    ApiMetrics metrics,
    IOptions<ApiOptions> options,
    ILogger<ApiDispatcher> logger)
{
    /// <summary>The operations, as they appear in <c>POST /api/backend/{op}</c> and <c>{prefix}.api.{op}</c>.</summary>
    public static readonly IReadOnlyList<string> Operations = ["publish", "broadcast", "history", "presence", "rooms", "info", "disconnect", "ban", "unban"];

    // Longest reason a disconnect or ban may give: it becomes the WebSocket close reason, which has 123 bytes.
    private const int MaxReasonBytes = 100;

    // Room left in a NATS reply for the answer's own fields around a history page's envelopes.
    private const int ReplyOverheadBytes = 4096;

    /// <summary>
    /// Runs <paramref name="op"/> with <paramref name="body"/>, in <paramref name="format"/>, for <paramref name="caller"/>.
    /// A history page is kept within <paramref name="maxReplyBytes"/>, the largest answer the adapter can carry (NATS:
    /// the server's max_payload). The answer is JSON whatever the body's format.
    /// </summary>
    public async Task<ApiReply> HandleAsync(
        string op, ReadOnlyMemory<byte> body, WireFormat format, ApiCaller caller, int maxReplyBytes, CancellationToken cancellationToken)
    {
        var status = StatusCodes.Status200OK;
        try
        {
            var reply = await RunAsync(op, body, format, caller, maxReplyBytes, cancellationToken);
            return new ApiReply(status, reply);
        }
        catch (ApiException ex)
        {
            status = ex.Status;
            return new ApiReply(ex.Status, ApiJson.Problem(ex.Code, ex.Message), ex.RetryAfter);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            // NATS unavailable, a timeout (or a bug, in the log): the caller learns that the operation may not have
            // happened, never a stack trace.
            LogFailed(ex, op);
            status = StatusCodes.Status503ServiceUnavailable;
            return new ApiReply(status, ApiJson.Problem(ErrorCodes.Unavailable, $"'{op}' could not be completed; retry"));
        }
        finally
        {
            metrics.Request(op, caller.Via, status);
        }
    }

    private async Task<byte[]> RunAsync(
        string op, ReadOnlyMemory<byte> body, WireFormat format, ApiCaller caller, int maxReplyBytes, CancellationToken cancellationToken)
    {
        var o = options.Value;
        // An unknown operation is 404 whatever its body (the body's rules are the operation's).
        if (!Operations.Contains(op))
        {
            throw new ApiException(StatusCodes.Status404NotFound, ErrorCodes.NotFound,
                $"no such operation; the operations are {string.Join(", ", Operations)}");
        }

        using var args = ApiArgs.Parse(body, format, envelope: op is "publish" or "broadcast");
        switch (op)
        {
            case "publish":
                {
                    var room = args.Room();
                    var message = Message(args, caller, room);
                    Limit(caller, 1);
                    return ApiJson.Serialize(await api.PublishAsync(room, message, cancellationToken));
                }

            case "broadcast":
                {
                    var rooms = args.Rooms("rooms", o.MaxBroadcastRooms);
                    var message = Message(args, caller, rooms[0]);
                    Limit(caller, rooms.Count);
                    return ApiJson.Serialize(await api.BroadcastAsync(rooms, message, cancellationToken));
                }

            case "history":
                {
                    var room = args.Room();
                    var after = args.UInt64("after_seq");
                    var to = args.UInt64("to_seq");
                    var latest = args.Int("latest", 1, o.MaxHistoryPage);
                    var limit = args.Int("limit", 1, o.MaxHistoryPage) ?? Math.Min(100, o.MaxHistoryPage);
                    args.EnsureNoOthers();
                    if (latest is not null && (after is not null || to is not null))
                    {
                        throw ApiException.Invalid(ErrorCodes.InvalidArgument, "'latest' cannot be combined with 'after_seq' or 'to_seq'");
                    }

                    if (to is { } end && after is { } start && end <= start)
                    {
                        throw ApiException.Invalid(ErrorCodes.InvalidArgument, "'to_seq' must be greater than 'after_seq'");
                    }

                    Limit(caller, 1);
                    var maxBytes = Math.Min(o.MaxHistoryPageBytes, Math.Max(1, maxReplyBytes - ReplyOverheadBytes));
                    return ApiJson.Serialize(await api.HistoryAsync(new HistoryQuery(room, after ?? 0, to, latest, limit), maxBytes, cancellationToken));
                }

            case "presence":
                {
                    var room = args.Room();
                    args.EnsureNoOthers();
                    Limit(caller, 1);
                    return ApiJson.Serialize(await api.PresenceAsync(room, cancellationToken));
                }

            case "rooms":
                {
                    var cluster = Scope(args);
                    var text = args.Text("pattern", RoomName.MaxLength);
                    RoomPattern? pattern = null;
                    if (text is not null && !RoomPattern.TryParse(text, out pattern))
                    {
                        throw ApiException.Invalid(ErrorCodes.InvalidArgument, "'pattern' must be a room pattern: dot-separated [A-Za-z0-9_-] tokens, '*' and a final '>'");
                    }

                    var limit = args.Int("limit", 1, o.MaxRoomsListed) ?? Math.Min(1000, o.MaxRoomsListed);
                    args.EnsureNoOthers();
                    Limit(caller, 1);
                    return ApiJson.Serialize(await api.RoomsAsync(cluster, pattern, limit, cancellationToken));
                }

            case "info":
                {
                    var cluster = Scope(args);
                    args.EnsureNoOthers();
                    Limit(caller, 1);
                    return ApiJson.Serialize(await api.InfoAsync(cluster, cancellationToken));
                }

            case "disconnect":
                {
                    var user = args.User();
                    var reason = args.Text("reason", MaxReasonBytes);
                    args.EnsureNoOthers();
                    Limit(caller, 1);
                    return ApiJson.Serialize(await api.DisconnectAsync(user, reason, cancellationToken));
                }

            case "ban":
                {
                    var user = args.User();
                    var reason = args.Text("reason", MaxReasonBytes);
                    var maxSeconds = (int)Math.Min(int.MaxValue, o.MaxBanTtl.TotalSeconds);
                    var ttl = args.Int("ttl_seconds", 1, maxSeconds) is { } seconds ? TimeSpan.FromSeconds(seconds) : o.DefaultBanTtl;
                    args.EnsureNoOthers();
                    Limit(caller, 1);
                    return ApiJson.Serialize(await api.BanAsync(user, ttl, reason, cancellationToken));
                }

            case "unban":
                {
                    var user = args.User();
                    args.EnsureNoOthers();
                    Limit(caller, 1);
                    return ApiJson.Serialize(await api.UnbanAsync(user, cancellationToken));
                }

            default:
                throw new InvalidOperationException($"operation '{op}' is listed but not handled");
        }
    }

    /// <summary>
    /// The message of a publish or broadcast: the envelope fields (<see cref="ApiArgs.Envelope"/>), read by the same
    /// decoder and checks as a client's publish in the body's format, and <c>from</c> (default: the caller's).
    /// </summary>
    private static ApiMessage Message(ApiArgs args, ApiCaller caller, string room)
    {
        var from = args.Subject("from") ?? caller.From;
        var frame = args.Envelope();
        if (PublishService.Check(frame.Type, room, frame.Id) is { } refused)
        {
            throw ApiException.Invalid(refused.Code, refused.Message);
        }

        return new ApiMessage(frame, from);
    }

    /// <summary><c>scope</c>: <c>cluster</c> (the default: every worker) or <c>worker</c> (the one answering).</summary>
    private static bool Scope(ApiArgs args) => args.Text("scope", 16) switch
    {
        null or "cluster" => true,
        "worker" => false,
        _ => throw ApiException.Invalid(ErrorCodes.InvalidArgument, "'scope' must be \"cluster\" or \"worker\""),
    };

    private void Limit(ApiCaller caller, int permits)
    {
        if (!limiter.TryAcquire(caller.Name, permits, out var retryAfter))
        {
            metrics.RateLimited();
            throw new ApiException(StatusCodes.Status429TooManyRequests, ErrorCodes.RateLimited,
                $"over the API rate limit (Bridge:Api:RequestsPerSecond); retry in {Math.Ceiling(retryAfter.TotalSeconds)} s", retryAfter);
        }
    }

    [LoggerMessage(EventId = 6004, Level = LogLevel.Warning, Message = "Backend API operation {Op} failed")]
    private partial void LogFailed(Exception exception, string op);
}
