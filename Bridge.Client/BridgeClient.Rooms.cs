using System.Text.Json;
using Bridge.Client.Protocol;
using Bridge.Contracts;

namespace Bridge.Client;

public sealed partial class BridgeClient
{
    /// <summary>
    /// Joins <paramref name="room"/> live, or from <paramref name="since"/>: the same as
    /// <see cref="JoinAsync(string, RoomJoinOptions, CancellationToken)"/> with <see cref="RoomJoinOptions.Since"/> =
    /// <paramref name="since"/> (a stream <c>seq</c>, 0 to 2⁶⁴-1; 0 replays everything the server still holds), and
    /// with the same exceptions.
    /// </summary>
    public Task<RoomSubscription> JoinAsync(string room, ulong? since = null, CancellationToken cancellationToken = default) =>
        JoinAsync(room, new RoomJoinOptions { Since = since }, cancellationToken);

    /// <summary>
    /// Joins <paramref name="room"/>, a room or a room pattern (<c>devices.site-3.*</c>: <c>*</c> matches exactly one
    /// token, a final <c>&gt;</c> one or more; docs/protocol.md §4), now or once connected, and keeps it joined across
    /// reconnects. A pattern delivers the messages of every room it matches, each with its concrete
    /// <see cref="BridgeMessage.Room"/>, through one subscription; its position is a stream <c>seq</c> like a room's.
    /// <paramref name="options"/> resume from a position, ask for each room's latest value first, or conflate
    /// (<see cref="RoomJoinOptions"/>). Completes on the first <c>room.joined</c> (<see cref="RoomSubscription.LastJoin"/>
    /// is set by then), or earlier when the messages before it (a resume's replay, a <c>latest</c> join's values) are
    /// more than <see cref="BridgeClientOptions.RoomBufferCapacity"/>: read them to let the rest come;
    /// <see cref="RoomSubscription.Joined"/> is raised when <c>room.joined</c> follows. Joining a name already joined
    /// returns its subscription and ignores <paramref name="options"/>.
    /// </summary>
    /// <exception cref="ArgumentNullException"><paramref name="options"/> is null.</exception>
    /// <exception cref="ArgumentException"><paramref name="room"/> is neither a valid room name nor a valid room pattern
    /// (docs/protocol.md §2, §4), or <see cref="RoomJoinOptions.Since"/> is combined with
    /// <see cref="RoomJoinOptions.MaxRate"/>.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="RoomJoinOptions.MaxRate"/> is not above 0 and at most
    /// <see cref="RoomJoinOptions.MaxRateLimit"/>.</exception>
    /// <exception cref="BridgeException">The client refused it: <c>overlapping_join</c> when it shares rooms with a room or
    /// pattern joined already (a room and a pattern matching it, two patterns sharing rooms: the worker sends such a
    /// message once, so it could not say which join it belongs to; leave one first). Or the server refused it (its
    /// error code: <c>forbidden</c> when the token's grant does not cover every room the pattern can match,
    /// <c>pattern_too_broad</c>, <c>too_many_rooms</c> when a <c>latest</c> join would return more rooms than the
    /// worker allows or the connection holds too many rooms or patterns, or <c>unavailable</c> / <c>rate_limited</c>
    /// after 5 tries; once this method has returned, those two never end the room: its rejoins are retried until they
    /// succeed), the room was left meanwhile (<c>left</c>), or the client closed for good (<c>unauthorized</c>,
    /// <c>closed</c>).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled: the room is left.</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    public async Task<RoomSubscription> JoinAsync(string room, RoomJoinOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        ValidateJoin(room, nameof(room), options);
        ThrowIfClosed();
        var subscription = _rooms.GetOrAdd(room, () => NewSubscription(room, options));
        try
        {
            await subscription.Feed.FirstJoin.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await LeaveCoreAsync(subscription, CancellationToken.None).ConfigureAwait(false);
            throw;
        }

        return subscription;
    }

    /// <summary>
    /// Joins many rooms or room patterns at once, all with <paramref name="options"/> (null: live joins, a new
    /// <see cref="RoomJoinOptions"/>), in batch <c>room.join</c> frames (docs/protocol.md §4 "Batch form", §12) instead
    /// of one frame per room: an application joining thousands of rooms stays within the worker's frame rate
    /// (§1.1). The frames are sized as a reconnect's rejoin: at most 1,000 rooms or <c>welcome</c>'s
    /// <c>maxRoomsPerConnection</c>, and at most min(<see cref="BridgeClientOptions.MaxFrameBytes"/>, <c>welcome</c>'s
    /// <c>maxFrameBytes</c>) bytes (an open connection to a worker whose <c>welcome</c> has no <c>maxFrameBytes</c>, whose
    /// batch errors name no room, gets single joins); they go out at once on an open connection, else on the next <c>welcome</c> (like
    /// <see cref="JoinAsync(string, RoomJoinOptions, CancellationToken)"/>, the rooms are held meanwhile). Each room is
    /// kept joined across reconnects, as <c>JoinAsync</c>'s.
    /// </summary>
    /// <returns>
    /// One <see cref="RoomJoinResult"/> per name of <paramref name="rooms"/>, in the same order, once every room has
    /// its answer: <see cref="RoomJoinResult.Subscription"/> when the room was joined (completed on its own
    /// <c>room.joined</c>, or earlier under the conditions <c>JoinAsync</c> returns early on), or
    /// <see cref="RoomJoinResult.Error"/> with the room's own refusal, which leaves the other rooms joined: the
    /// server's code (<c>forbidden</c>, <c>too_many_rooms</c> when the connection holds too many rooms or patterns,
    /// <c>pattern_too_broad</c>, <c>unavailable</c> / <c>rate_limited</c> after 5 tries...), <c>overlapping_join</c>
    /// when it shares rooms with a room or pattern held (or given earlier in <paramref name="rooms"/>), or <c>left</c>
    /// when it was left meanwhile. A name already held (or given twice) gets the held subscription, and
    /// <paramref name="options"/> are ignored for it, as with <c>JoinAsync</c>.
    /// </returns>
    /// <exception cref="ArgumentNullException"><paramref name="rooms"/> is null.</exception>
    /// <exception cref="ArgumentException">A name in <paramref name="rooms"/> is neither a valid room name nor a valid
    /// room pattern (docs/protocol.md §2, §4), or <see cref="RoomJoinOptions.Since"/> is combined with
    /// <see cref="RoomJoinOptions.MaxRate"/>: nothing is joined.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><see cref="RoomJoinOptions.MaxRate"/> is not above 0 and at most
    /// <see cref="RoomJoinOptions.MaxRateLimit"/>: nothing is joined.</exception>
    /// <exception cref="BridgeException">The client closed for good (<c>unauthorized</c>, <c>closed</c>), before or
    /// while the rooms were joining.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled: the rooms this
    /// call added are left (names held before it stay joined).</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    public async Task<IReadOnlyList<RoomJoinResult>> JoinManyAsync(
        IEnumerable<string> rooms, RoomJoinOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(rooms);
        options ??= new RoomJoinOptions();
        List<string> names = [.. rooms];
        foreach (var room in names)
        {
            ValidateJoin(room, nameof(rooms), options);
        }

        ThrowIfClosed();
        var answers = _rooms.GetOrAddMany(names, room => NewSubscription(room, options));
        var results = new Task<RoomJoinResult>[names.Count];
        for (var i = 0; i < names.Count; i++)
        {
            var (subscription, _, refused) = answers[i];
            results[i] = subscription is null
                ? Task.FromResult(new RoomJoinResult(names[i], null, refused))
                : JoinResultAsync(subscription, cancellationToken);
        }

        RoomJoinResult[] joined;
        try
        {
            joined = await Task.WhenAll(results).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            await Task.WhenAll(answers.Where(a => a.Added).Select(a => LeaveCoreAsync(a.Subscription!, CancellationToken.None))).ConfigureAwait(false);
            throw;
        }

        // Closing for good ends every room with the client's error: that is the call's, not each room's.
        ThrowIfClosed();
        return joined;
    }

    /// <summary>A room of <see cref="JoinManyAsync"/>: its subscription once joined, or its own refusal; the
    /// cancellation is thrown.</summary>
    private static async Task<RoomJoinResult> JoinResultAsync(RoomSubscription subscription, CancellationToken cancellationToken)
    {
        try
        {
            await subscription.Feed.FirstJoin.WaitAsync(cancellationToken).ConfigureAwait(false);
            return new RoomJoinResult(subscription.Room, subscription, null);
        }
        catch (BridgeException ex)
        {
            return new RoomJoinResult(subscription.Room, null, ex);
        }
    }

    private RoomSubscription NewSubscription(string room, RoomJoinOptions options) =>
        new(this, room, options, new RoomFeed(options, _options.RoomBufferCapacity, RoomName.IsPattern(room)));

    /// <summary>The checks of a join's arguments (<see cref="JoinAsync(string, RoomJoinOptions, CancellationToken)"/>'s exceptions).</summary>
    private static void ValidateJoin(string room, string parameter, RoomJoinOptions options)
    {
        if (!RoomName.IsValid(room) && !RoomName.IsValidPattern(room))
        {
            throw new ArgumentException($"'{room}' is neither a valid room name nor a valid room pattern (docs/protocol.md §2, §4)", parameter);
        }

        if (options.MaxRate is { } rate)
        {
            if (!double.IsFinite(rate) || rate <= 0 || rate > RoomJoinOptions.MaxRateLimit)
            {
                throw new ArgumentOutOfRangeException(nameof(options), rate, $"MaxRate must be above 0 and at most {RoomJoinOptions.MaxRateLimit} messages per second per room");
            }

            if (options.Since is not null)
            {
                throw new ArgumentException("Since cannot be combined with MaxRate: a conflated join gets each room's newest message, never a replay", nameof(options));
            }
        }
    }

    /// <summary>
    /// Leaves a room or a room pattern (the name as joined): its enumerable ends (after the messages it already holds), no more of its messages are
    /// delivered, and it is not resumed. Waits at most <see cref="BridgeClientOptions.AckTimeout"/> for the server's
    /// <c>room.left</c> (the room is left on the client's side at once either way). Leaving a room not joined does
    /// nothing. Throws only <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is cancelled.
    /// </summary>
    public Task LeaveAsync(string room, CancellationToken cancellationToken = default) =>
        _rooms.Find(room) is { } subscription ? LeaveCoreAsync(subscription, cancellationToken) : Task.CompletedTask;

    internal async Task LeaveCoreAsync(RoomSubscription subscription, CancellationToken cancellationToken)
    {
        if (!_rooms.TryRemove(subscription, out var connection) ||
            connection?.TrySendRequest(RequestKind.Leave, MessageTypes.RoomLeave, subscription.Room, null) is not { } request)
        {
            return;
        }

        try
        {
            await request.Answer.WaitAsync(_options.AckTimeout, _time, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is BridgeException or TimeoutException)
        {
            // Left on our side already; the connection going away leaves the room on the server too.
        }
    }

    /// <summary>
    /// <c>room.sync</c>: the room's last <paramref name="limit"/> (1-100) stored messages, oldest first, and its
    /// position (<see cref="RoomState.Seq"/>: join with <c>since</c> = it to continue from there). Waits for a
    /// connection, and asks again on the next one if the connection ends before the answer.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="room"/> is not a valid room name.</exception>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="limit"/> is outside 1-100.</exception>
    /// <exception cref="BridgeException">The server refused it (<c>forbidden</c>, <c>unavailable</c>...) or the client closed for good.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    public async Task<RoomState> SyncAsync(string room, int limit = 1, CancellationToken cancellationToken = default)
    {
        if (!RoomName.IsValid(room))
        {
            throw new ArgumentException($"'{room}' is not a valid room name", nameof(room));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(limit, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(limit, ProtocolLimits.MaxSyncLimit);
        var payload = System.Text.Encoding.UTF8.GetBytes($"{{\"limit\":{limit}}}");
        var state = await RequestAsync(RequestKind.Sync, MessageTypes.RoomSync, room, payload, cancellationToken).ConfigureAwait(false);
        var messages = state.Messages?.Where(m => m.Type is not null && m.Room is not null).Select(m => m.ToMessage()).ToList() ?? [];
        return new RoomState(room, state.Seq ?? 0, messages);
    }

    /// <summary>
    /// <c>presence.query</c>: who is in a presence room, over all workers (at most the server's <c>MaxMembers</c>).
    /// Waits for a connection, and asks again on the next one if the connection ends before the answer.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="room"/> is not a valid room name.</exception>
    /// <exception cref="BridgeException">The server refused it (<c>forbidden</c>, <c>presence_disabled</c>...) or the client closed for good.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    public async Task<IReadOnlyList<PresenceMember>> QueryPresenceAsync(string room, CancellationToken cancellationToken = default)
    {
        if (!RoomName.IsValid(room))
        {
            throw new ArgumentException($"'{room}' is not a valid room name", nameof(room));
        }

        var state = await RequestAsync(RequestKind.Presence, MessageTypes.PresenceQuery, room, null, cancellationToken).ConfigureAwait(false);
        var members = new List<PresenceMember>();
        if (state.Payload is { ValueKind: JsonValueKind.Object } payload &&
            payload.TryGetProperty("members", out var list) && list.ValueKind == JsonValueKind.Array)
        {
            foreach (var m in list.EnumerateArray())
            {
                if (m.ValueKind == JsonValueKind.Object && m.TryGetProperty("user", out var user) && user.ValueKind == JsonValueKind.String)
                {
                    var connections = m.TryGetProperty("connections", out var c) && c.TryGetInt32(out var n) ? n : 0;
                    var since = m.TryGetProperty("since", out var s) && s.TryGetInt64(out var ms) ? Envelope.FromUnixMs(ms) : default;
                    members.Add(new PresenceMember(user.GetString()!, connections, since));
                }
            }
        }

        return members;
    }

    /// <summary>Sends an idempotent request (sync, presence) on the ready connection; a connection lost before the
    /// answer came is waited out and the request sent again on the next one.</summary>
    private async Task<Envelope> RequestAsync(RequestKind kind, string type, string room, byte[]? payload, CancellationToken ct)
    {
        while (true)
        {
            ThrowIfClosed();
            var connection = await _status.WhenReady().WaitAsync(ct).ConfigureAwait(false);
            if (connection.TrySendRequest(kind, type, room, payload) is not { } request)
            {
                continue; // it ended meanwhile: the next one answers
            }

            try
            {
                return await request.Answer.WaitAsync(ct).ConfigureAwait(false);
            }
            catch (BridgeException ex) when (ex.Code == "disconnected")
            {
                // The next connection answers.
            }
        }
    }
}
