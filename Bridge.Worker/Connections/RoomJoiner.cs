using Bridge.Contracts;
using Bridge.Worker.Nats;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Connections;

/// <summary>
/// Joins a connection (of any transport) to a room. Without <c>since</c> the connection is live from now on.
/// With it, the room's stored messages after <c>since</c> are replayed, then the connection switches to the
/// live feed with no gap and no duplicate at the seam: live messages arriving during the replay are held back
/// in the membership and only those after the replay are sent. Each join runs beside the connection's receive
/// loop, so one room's replay never holds up the connection's other rooms.
/// </summary>
internal sealed partial class RoomJoiner(
    RoomRegistry rooms, RoomHistory history, Operations.BridgeMetrics metrics, IOptions<ConnectionOptions> options, ILogger<RoomJoiner> logger)
{
    /// <summary>Starts a join; answers <c>room.joined</c> (or an error) on the session when done.</summary>
    public async ValueTask StartJoinAsync(ClientSession session, string name, ulong? since, string? reference, CancellationToken cancellationToken)
    {
        var membership = new RoomMembership(session, name, options.Value.JoinBufferCapacity);
        if (!session.Rooms.TryAdd(name, membership))
        {
            // Already in (or joining): a live membership answers with its position; a join in flight answers itself.
            if (session.Rooms.TryGetValue(name, out var existing) && existing.IsLive)
            {
                session.Send(ControlFrames.RoomJoined(name, existing.Position, 0, false));
            }

            return;
        }

        if (session.Rooms.Count > options.Value.MaxRoomsPerConnection)
        {
            session.Rooms.TryRemove(new KeyValuePair<string, RoomMembership>(name, membership));
            session.SendError(ErrorCodes.TooManyRooms, $"a connection may be in at most {options.Value.MaxRoomsPerConnection} rooms", reference);
            return;
        }

        await session.StartBackgroundAsync(ct => JoinAsync(membership, since, reference, ct), cancellationToken);
    }

    /// <summary>
    /// Starts the joins of a stream transport (SSE, long-poll) that gets all its rooms at once. It returns at once:
    /// the joins wait for the session's request slots in the background while the caller already drains the
    /// queue; waiting here would deadlock once replays fill the queue that nobody reads yet.
    /// </summary>
    public Task StartJoinsAsync(ClientSession session, IReadOnlyList<string> names, IReadOnlyDictionary<string, ulong> positions) =>
        Task.Run(async () =>
        {
            try
            {
                foreach (var name in names)
                {
                    await StartJoinAsync(session, name, positions.TryGetValue(name, out var p) ? p : null, null, session.Closing);
                }
            }
            catch (OperationCanceledException) when (session.Closing.IsCancellationRequested)
            {
            }
        });

    /// <summary>Leaves every room of a closing session (after its background joins ended).</summary>
    public async Task LeaveAllAsync(ClientSession session)
    {
        await session.DrainBackgroundAsync();
        foreach (var membership in session.Rooms.Values)
        {
            membership.Close();
            if (membership.Room is { } room)
            {
                await rooms.LeaveAsync(room, membership);
            }
        }

        session.Rooms.Clear();
    }

    private async Task JoinAsync(RoomMembership membership, ulong? since, string? reference, CancellationToken cancellationToken)
    {
        var session = membership.Session;
        var name = membership.RoomName;
        try
        {
            var room = await rooms.JoinAsync(name, membership, cancellationToken);
            membership.Room = room;
            if (membership.IsClosed)
            {
                await rooms.LeaveAsync(room, membership); // left while joining
                return;
            }

            // The seam: everything the feed dispatched up to here is history; everything after it is held in the
            // membership. A replay reads the stream to its end, so together they miss nothing.
            ulong position;
            await room.Gate.WaitAsync(cancellationToken);
            try
            {
                position = room.LastSeq;
            }
            finally
            {
                room.Gate.Release();
            }

            var replayed = 0;
            var truncated = false;
            if (since is { } from)
            {
                // Retention drops a room's oldest messages first: if `since` itself is still stored, so is
                // everything after it. If it is gone (or never was this room's), something may be missing.
                truncated = from > 0 && !await history.IsStoredInRoomAsync(name, from, cancellationToken);
                ulong last = 0;
                // Only (since, position] is history: everything after the position is held in the membership.
                await foreach (var message in history.ReadAsync(name, from, position, cancellationToken, mustReach: position))
                {
                    await session.Queue.WaitForHeadroomAsync(cancellationToken);
                    if (!membership.DeliverReplayed(message))
                    {
                        return;
                    }

                    last = message.Seq;
                    replayed++;
                }

                metrics.Resumed(replayed, truncated);

                // A `since` from a stream that no longer exists (truncated, nothing replayed) is not trusted.
                position = Math.Max(position, Math.Max(truncated ? 0 : from, last));
            }

            membership.Activate(ControlFrames.RoomJoined(name, position, replayed, truncated), position);
            LogJoined(session.ConnectionId, name, position, replayed, truncated);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The connection is closing; its clean-up leaves the room.
        }
        catch (Exception ex)
        {
            LogJoinFailed(ex, session.ConnectionId, name);
            session.Rooms.TryRemove(new KeyValuePair<string, RoomMembership>(name, membership));
            membership.Close();
            if (membership.Room is { } joined)
            {
                await rooms.LeaveAsync(joined, membership);
            }

            session.SendError(ErrorCodes.Unavailable, $"room '{name}' could not be joined now; retry", reference);
        }
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Connection {ConnectionId} could not join {Room}")]
    private partial void LogJoinFailed(Exception exception, string connectionId, string room);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Debug, Message = "Connection {ConnectionId} joined {Room} at {Seq} (replayed {Replayed}, truncated {Truncated})")]
    private partial void LogJoined(string connectionId, string room, ulong seq, int replayed, bool truncated);
}
