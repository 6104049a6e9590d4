using System.Reflection;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Bridge.Worker.Security;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Backend;

/// <summary>
/// This worker's part of a cluster-wide request: its info, its active rooms, and closing a user's connections here.
/// Also closes, as soon as a ban reaches this worker by any route, the connections whose token predates it.
/// </summary>
internal sealed partial class LocalWorker
{
    private static readonly string Version =
        typeof(LocalWorker).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown";

    // Sessions this worker has told to close: a ban reaches a worker twice (its watch, and the banning worker's order),
    // and the session must be told, and counted, once.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<ClientSession, object> _told = [];
    // Connections closed here per ban (user and ban time), so that the banning worker's order, which often arrives after
    // the watch has closed them and they are gone, is still answered with the count. Entries are kept a few minutes.
    private readonly Dictionary<(string User, long BannedAt), (int Closed, long At)> _banCloses = [];

    // One disconnect at a time: a ban's two routes run on different threads, and the second must see what the first
    // closed and counted.
    private readonly Lock _gate = new();
    private readonly ConnectionTracker _connections;
    private readonly RoomRegistry _rooms;
    private readonly NatsContext _nats;
    private readonly UserBans _bans;
    private readonly WorkerDirectory _directory;
    private readonly TimeProvider _time;
    private readonly ILogger<LocalWorker> _logger;

    public LocalWorker(
        ConnectionTracker connections, RoomRegistry rooms, NatsContext nats, UserBans bans, WorkerDirectory directory,
        IOptions<WorkerOptions> worker, TimeProvider time, ILogger<LocalWorker> logger)
    {
        _connections = connections;
        _rooms = rooms;
        _nats = nats;
        _bans = bans;
        _directory = directory;
        _time = time;
        _logger = logger;
        Id = worker.Value.Id;
        bans.Banned += ban => Disconnect(new DisconnectOrder(ban.User, ban.Reason, ban));
    }

    private static readonly TimeSpan BanCountsKept = TimeSpan.FromMinutes(5);

    public string Id { get; }

    public WorkerInfo Info()
    {
        int websocket = 0, sse = 0, total = 0;
        foreach (var session in _connections.Sessions)
        {
            total++;
            switch (session.Transport)
            {
                case TransportKind.WebSocket:
                    websocket++;
                    break;
                case TransportKind.Sse:
                    sse++;
                    break;
            }
        }

        var connection = _nats.Connection;
        var server = connection.ServerInfo;
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        return new WorkerInfo(
            Id,
            Version,
            _directory.StartedAt,
            Math.Round((now - _directory.StartedAt) / 1000.0, 3),
            new ConnectionCounts(total, websocket, sse),
            _rooms.ActiveRooms,
            _bans.Count,
            new NatsInfo(
                connection.ConnectionState.ToString().ToLowerInvariant(),
                server?.Id,
                server?.Name,
                server?.Version,
                server?.Cluster,
                server?.MaxPayload,
                server?.JetStreamAvailable));
    }

    /// <summary>Active rooms here matching <paramref name="pattern"/> (all when null), by name, at most <paramref name="limit"/>.</summary>
    public WorkerRooms Rooms(RoomPattern? pattern, int limit)
    {
        // Each matching room's member count read once (it takes the room's dispatch lock): a room listed is never listed with 0.
        var matching = _rooms.Snapshot()
            .Where(r => r.Pattern is null && (pattern is null || pattern.Matches(r.Name)))
            .Select(r => new LocalRoom(r.Name, r.MemberCount))
            .Where(r => r.Connections > 0)
            .OrderBy(r => r.Room, StringComparer.Ordinal)
            .Take(limit + 1)
            .ToList();
        var truncated = matching.Count > limit;
        return new WorkerRooms(Id, truncated, truncated ? matching[..limit] : matching);
    }

    /// <summary>
    /// Closes the user's connections here (those whose token predates the order's ban, when it has one): a WebSocket
    /// with <see cref="CloseCodes.Disconnected"/> (4010), or <see cref="CloseCodes.Forbidden"/> (4003) for a ban; an
    /// SSE stream gets a <c>server.disconnect</c> event with that code and ends. Long-polls hold no connection: the
    /// next poll of a banned user is refused.
    /// </summary>
    public WorkerDisconnects Disconnect(DisconnectOrder order)
    {
        var (code, reason) = order.Ban is null
            ? (CloseCodes.Disconnected, string.IsNullOrEmpty(order.Reason) ? "disconnected" : order.Reason)
            : (CloseCodes.Forbidden, "banned");
        lock (_gate)
        {
            return new WorkerDisconnects(Id, CloseLocked(order, code, reason));
        }
    }

    private int CloseLocked(DisconnectOrder order, int code, string reason)
    {
        var now = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var closed = 0;
        foreach (var session in _connections.Sessions)
        {
            var identity = session.Identity;
            if (!string.Equals(identity.Subject, order.User, StringComparison.Ordinal) ||
                (order.Ban is { } ban && !ban.Revokes(identity.IssuedAt, now)))
            {
                continue;
            }

            // Told already (a ban seen by the watch first: counted in _banCloses), or closing for another reason.
            if (session.CloseRequested is not null || !_told.TryAdd(session, order))
            {
                continue;
            }

            session.CloseOrNotify(code, reason, new ControlFrame(MessageTypes.ServerDisconnect, Payload: new Dictionary<string, object?>
            {
                ["code"] = code,
                ["reason"] = reason,
            }));

            closed++;
        }

        if (closed > 0)
        {
            LogDisconnected(closed, order.User, code);
        }

        if (order.Ban is { } done)
        {
            foreach (var (old, entry) in _banCloses)
            {
                if (now - entry.At > BanCountsKept.TotalMilliseconds)
                {
                    _banCloses.Remove(old); // allowed while enumerating a Dictionary
                }
            }

            var key = (done.User, done.BannedAt);
            closed += _banCloses.TryGetValue(key, out var before) ? before.Closed : 0;
            _banCloses[key] = (closed, now);
        }

        return closed;
    }

    [LoggerMessage(EventId = 6201, Level = LogLevel.Information, Message = "Closed {Connections} connections of user {User} ({Code}) for the backend API")]
    private partial void LogDisconnected(int connections, string user, int code);
}
