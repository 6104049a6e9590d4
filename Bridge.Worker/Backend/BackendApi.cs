using Bridge.Contracts;
using Bridge.Worker.Nats;
using Bridge.Worker.Operations;
using Bridge.Worker.Presence;
using Bridge.Worker.Protocol;
using Bridge.Worker.Publishing;
using Bridge.Worker.Security;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Backend;

/// <summary>A message to store, as the edge decoded and checked it.</summary>
internal sealed record ApiMessage(InboundFrame Frame, string From);

/// <summary>
/// A page of history: after <see cref="AfterSeq"/> (exclusive) up to <see cref="ToSeq"/> (inclusive, or the end), at most
/// <see cref="Limit"/> messages; or, with <see cref="Latest"/>, the room's latest messages.
/// </summary>
internal sealed record HistoryQuery(string Room, ulong AfterSeq, ulong? ToSeq, int? Latest, int Limit);

/// <summary>Asks every worker for its active rooms matching a pattern.</summary>
internal sealed record RoomsOrder(string? Pattern, int Limit);

/// <summary>
/// The backend API's operations, each implemented once; the HTTP and NATS adapters hand them requests that
/// <see cref="ApiDispatcher"/> has already validated. Refusals are <see cref="ApiException"/>s.
/// </summary>
internal sealed partial class BackendApi(
    PublishService publishing,
    RoomHistory history,
    PresenceTracker presence,
    UserBans bans,
    WorkerScatter scatter,
    LocalWorker local,
    ILogger<BackendApi> logger)
{
    public const string Transport = "api";

    /// <summary>Stores one message in one room.</summary>
    public async Task<PublishReply> PublishAsync(string room, ApiMessage message, CancellationToken cancellationToken)
    {
        // Checked where it entered (ApiDispatcher); a backend is trusted to publish anywhere.
        var outcome = await publishing.PublishAsync(message.Frame, room, identity: null, message.From, Transport, Transport, cancellationToken);
        return outcome.Status == PublishStatus.Stored
            ? new PublishReply(room, message.Frame.Id, outcome.Seq, outcome.Duplicate)
            : throw new ApiException(StatusCodes.Status503ServiceUnavailable, outcome.Code, outcome.Message);
    }

    /// <summary>
    /// Stores the same message in every room, pipelined (all written, then all acks read). Each room succeeds or fails
    /// on its own: the answer lists a seq or an error per room, in the request's order. A retry with the same
    /// <c>id</c> stores only the rooms that failed (the others answer <c>duplicate: true</c> within the window).
    /// </summary>
    public async Task<BroadcastReply> BroadcastAsync(IReadOnlyList<string> rooms, ApiMessage message, CancellationToken cancellationToken)
    {
        var pending = new PendingPublish[rooms.Count];
        for (var i = 0; i < rooms.Count; i++)
        {
            pending[i] = publishing.Start(message.Frame, rooms[i], message.From, Transport, cancellationToken);
        }

        var results = new BroadcastRoomResult[rooms.Count];
        for (var i = 0; i < rooms.Count; i++)
        {
            var outcome = await publishing.CompleteAsync(pending[i], rooms[i], Transport, cancellationToken);
            results[i] = outcome.Status == PublishStatus.Stored
                ? new BroadcastRoomResult(rooms[i], outcome.Seq, outcome.Duplicate)
                : new BroadcastRoomResult(rooms[i], Error: new ApiError(outcome.Code, "the message was not stored in this room; retry with the same id"));
        }

        var failed = results.Count(r => r.Error is not null);
        return new BroadcastReply(message.Frame.Id, rooms.Count - failed, failed, results);
    }

    /// <summary>A page of the room's stored messages as client envelopes, at most <paramref name="maxBytes"/> of them (but at least one).</summary>
    public async Task<HistoryReply> HistoryAsync(HistoryQuery query, int maxBytes, CancellationToken cancellationToken)
    {
        var room = query.Room;
        try
        {
            var lastSeq = await history.GetLastSeqAsync(room, cancellationToken);
            if (query.Latest is { } latest)
            {
                var tail = await history.ReadLatestAsync(room, latest, cancellationToken);
                var kept = new List<RawJson>();
                var bytes = 0;
                // Newest first into the budget, then back to oldest first.
                for (var i = tail.Count - 1; i >= 0; i--)
                {
                    // A message no JSON client can be sent (counted and logged by the reader) is left out here too.
                    if (tail[i].GetFrame(JsonFrameCodec.Instance) is not { } frame)
                    {
                        continue;
                    }

                    if (kept.Count > 0 && bytes + frame.Length > maxBytes)
                    {
                        break;
                    }

                    bytes += frame.Length;
                    kept.Add(new RawJson(frame));
                }

                kept.Reverse();
                var newest = tail.Count > 0 ? tail[^1].Seq : lastSeq;
                return new HistoryReply(room, Math.Max(lastSeq, newest), false, newest, kept);
            }

            var messages = new List<RawJson>();
            var size = 0;
            var last = query.AfterSeq;
            // The newest seq read: a message stored after GetLastSeqAsync answered is newer than lastSeq. Not the
            // query's after_seq, which may lie past the room's end (a cursor of a purged or recreated stream).
            ulong newestRead = 0;
            var cut = false;
            await foreach (var message in history.ReadAsync(room, query.AfterSeq, query.ToSeq, cancellationToken))
            {
                newestRead = message.Seq;
                if (message.GetFrame(JsonFrameCodec.Instance) is not { } frame)
                {
                    last = message.Seq; // skipped as for JSON clients, and paged past
                    continue;
                }

                if (messages.Count > 0 && size + frame.Length > maxBytes)
                {
                    cut = true;
                    break;
                }

                size += frame.Length;
                messages.Add(new RawJson(frame));
                last = message.Seq;
                if (messages.Count == query.Limit)
                {
                    cut = true;
                    break;
                }
            }

            var end = query.ToSeq is { } to ? Math.Min(to, lastSeq) : lastSeq;
            var more = cut && last < end;
            return new HistoryReply(room, Math.Max(lastSeq, newestRead), more, more ? last : null, messages);
        }
        catch (Exception ex) when (ex is not ApiException && !cancellationToken.IsCancellationRequested)
        {
            LogReadFailed(ex, room);
            throw new ApiException(StatusCodes.Status503ServiceUnavailable, ErrorCodes.Unavailable, "the room's history could not be read; retry");
        }
    }

    /// <summary>Who is in the room on any worker (presence rooms only).</summary>
    public async Task<PresenceReply> PresenceAsync(string room, CancellationToken cancellationToken)
    {
        if (!presence.IsEnabled(room))
        {
            throw ApiException.Invalid(ErrorCodes.PresenceDisabled, $"room '{room}' has no presence (Bridge:Presence:Rooms)");
        }

        var members = await presence.QueryAsync(room, cancellationToken);
        return new PresenceReply(room, [.. members.Select(m => new PresenceMemberReply(m.User, m.Connections, m.Since))]);
    }

    /// <summary>Active rooms (with at least one connection) on every worker, or on this one.</summary>
    public async Task<RoomsReply> RoomsAsync(bool cluster, RoomPattern? pattern, int limit, CancellationToken cancellationToken)
    {
        if (!cluster)
        {
            var mine = local.Rooms(pattern, limit);
            return new RoomsReply("worker", mine.Truncated, [.. mine.Rooms.Select(r => new RoomEntry(r.Room, r.Connections, 1))], [local.Id], []);
        }

        var gathered = await scatter.AskAllAsync<RoomsOrder, WorkerRooms>("rooms", new RoomsOrder(pattern?.Text, limit), a => a.Worker, cancellationToken);
        var merged = gathered.Answers
            .SelectMany(a => a.Rooms)
            .GroupBy(r => r.Room, StringComparer.Ordinal)
            .OrderBy(g => g.Key, StringComparer.Ordinal)
            .Select(g => new RoomEntry(g.Key, g.Sum(r => r.Connections), g.Count()))
            .ToList();
        var truncated = merged.Count > limit || gathered.Answers.Any(a => a.Truncated);
        return new RoomsReply("cluster", truncated, merged.Count > limit ? merged[..limit] : merged, gathered.Workers, gathered.Missing);
    }

    /// <summary>Every worker's info, or this worker's.</summary>
    public async Task<InfoReply> InfoAsync(bool cluster, CancellationToken cancellationToken)
    {
        if (!cluster)
        {
            return new InfoReply("worker", [local.Info()], []);
        }

        var gathered = await scatter.AskAllAsync<object, WorkerInfo>("info", new { }, a => a.Id, cancellationToken);
        return new InfoReply("cluster", [.. gathered.Answers.OrderBy(a => a.Id, StringComparer.Ordinal)], gathered.Missing);
    }

    /// <summary>Closes the user's connections on every worker (4010; they may reconnect).</summary>
    public async Task<DisconnectReply> DisconnectAsync(string user, string? reason, CancellationToken cancellationToken)
    {
        var gathered = await scatter.AskAllAsync<DisconnectOrder, WorkerDisconnects>(
            "disconnect", new DisconnectOrder(user, reason, null), a => a.Worker, cancellationToken);
        return new DisconnectReply(user, gathered.Answers.Sum(a => a.Connections), gathered.Workers, gathered.Missing);
    }

    /// <summary>
    /// Bans the user for <paramref name="ttl"/>: their tokens issued until now are refused on every worker, and their
    /// connections holding one are closed (4003). Stored first, so a worker that misses the order still has the ban.
    /// </summary>
    public async Task<BanReply> BanAsync(string user, TimeSpan ttl, string? reason, CancellationToken cancellationToken)
    {
        var ban = await bans.BanAsync(user, ttl, reason, cancellationToken);
        LogBanned(user, ttl);
        var gathered = await scatter.AskAllAsync<DisconnectOrder, WorkerDisconnects>(
            "ban", new DisconnectOrder(user, reason, ban), a => a.Worker, cancellationToken);
        return new BanReply(user, ban.BannedAt, ban.ExpiresAt, reason, gathered.Answers.Sum(a => a.Connections), gathered.Workers, gathered.Missing);
    }

    /// <summary>Lifts every ban of the user at once (otherwise each ends at its expiry).</summary>
    public async Task<UnbanReply> UnbanAsync(string user, CancellationToken cancellationToken)
    {
        var removed = await bans.UnbanAsync(user, cancellationToken);
        var gathered = await scatter.AskAllAsync<DisconnectOrder, WorkerDisconnects>(
            "unban", new DisconnectOrder(user, null, null), a => a.Worker, cancellationToken);
        return new UnbanReply(user, removed, gathered.Workers, gathered.Missing);
    }

    [LoggerMessage(EventId = 6002, Level = LogLevel.Warning, Message = "Backend API history read of {Room} failed")]
    private partial void LogReadFailed(Exception exception, string room);

    [LoggerMessage(EventId = 6003, Level = LogLevel.Information, Message = "User {User} banned for {Ttl} through the backend API")]
    private partial void LogBanned(string user, TimeSpan ttl);
}
