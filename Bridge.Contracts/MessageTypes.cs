using System.Text;

namespace Bridge.Contracts;

/// <summary>Message types with a meaning to the gateway itself. Every other type is an application type.</summary>
public static class MessageTypes
{
    /// <summary>Server to client, first frame of every connection.</summary>
    public const string Welcome = "welcome";

    /// <summary>Server to client: a publish was stored; carries <c>id</c> and <c>seq</c>.</summary>
    public const string Ack = "ack";

    /// <summary>Server to client: a frame was refused; payload <c>{code, message, ref}</c>.</summary>
    public const string Error = "error";

    /// <summary>Client to server: join a room.</summary>
    public const string RoomJoin = "room.join";

    /// <summary>Server to client: the room is joined and live.</summary>
    public const string RoomJoined = "room.joined";

    /// <summary>Client to server: leave a room.</summary>
    public const string RoomLeave = "room.leave";

    /// <summary>Server to client: the room is left.</summary>
    public const string RoomLeft = "room.left";

    /// <summary>Client to server: ask for a room's latest messages and position.</summary>
    public const string RoomSync = "room.sync";

    /// <summary>Server to client: answer to <c>room.sync</c>.</summary>
    public const string RoomState = "room.state";

    /// <summary>Client to server: replace the connection's token before it expires; payload <c>{token}</c>.</summary>
    public const string AuthRefresh = "auth.refresh";

    /// <summary>Server to client: the token was replaced; payload <c>{exp}</c> (unix seconds).</summary>
    public const string AuthRefreshed = "auth.refreshed";

    /// <summary>Server to client (SSE, long-poll): the worker is shutting down; payload <c>{reconnect_after_ms}</c>.</summary>
    public const string ServerShutdown = "server.shutdown";

    /// <summary>
    /// Server to client (SSE): a backend disconnected or banned the user; payload <c>{code, reason}</c> with the
    /// WebSocket close code (<see cref="CloseCodes.Disconnected"/> or <see cref="CloseCodes.Forbidden"/>). The stream ends after it.
    /// </summary>
    public const string ServerDisconnect = "server.disconnect";

    /// <summary>Client to server: who is in a room (presence-enabled rooms only).</summary>
    public const string PresenceQuery = "presence.query";

    /// <summary>Server to client: answer to <c>presence.query</c>; payload <c>{members: [{user, connections, since}]}</c>.</summary>
    public const string PresenceState = "presence.state";

    /// <summary>A room message the gateway publishes when a user comes online or goes offline in a presence room; payload <c>{user, status}</c>.</summary>
    public const string PresenceUpdate = "presence.update";

    /// <summary>
    /// Client to server (WebSocket only): is the connection alive? <c>id</c> required (the id rules), no room, no
    /// arguments. Answered with <see cref="Pong"/> of the same id, queued behind every frame already queued for the
    /// connection. In the gateway's reserved <c>bridge.</c> namespace, so no application type is taken from
    /// applications, and an older worker refuses it with an <c>unknown_type</c> error (docs/protocol.md §4).
    /// </summary>
    public const string Ping = "bridge.ping";

    /// <summary>Server to client: the answer to <see cref="Ping"/>; carries its <c>id</c>, no room, no payload.</summary>
    public const string Pong = "bridge.pong";

    /// <summary>Longest accepted type, in characters.</summary>
    public const int MaxLength = 64;

    // Prefixes owned by the gateway: a client may not publish an application message with these types,
    // so a room member can trust that e.g. "room.joined" came from the server.
    private static readonly string[] ReservedPrefixes = ["room.", "auth.", "presence.", "server.", "bridge."];
    private static readonly string[] ReservedNames = [Welcome, Ack, Error];

    /// <summary>
    /// True when <paramref name="type"/> is reserved for the gateway and cannot be published: <c>welcome</c>,
    /// <c>ack</c>, <c>error</c>, or a type starting with <c>room.</c>, <c>auth.</c>, <c>presence.</c>, <c>server.</c> or
    /// <c>bridge.</c>, each compared ignoring ASCII case (<c>ROOM.JOIN</c> and <c>Welcome</c> are reserved too), so
    /// that no reader dispatching types without regard to case takes a client's message for the gateway's.
    /// Throws <see cref="ArgumentNullException"/> when <paramref name="type"/> is null.
    /// </summary>
    public static bool IsReserved(string type)
    {
        ArgumentNullException.ThrowIfNull(type);
        foreach (var name in ReservedNames)
        {
            if (Ascii.EqualsIgnoreCase(type, name))
            {
                return true;
            }
        }

        foreach (var prefix in ReservedPrefixes)
        {
            if (type.Length >= prefix.Length && Ascii.EqualsIgnoreCase(type.AsSpan(0, prefix.Length), prefix))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// True when <paramref name="type"/> is a well-formed type: 1 to 64 characters, dot-separated tokens of
    /// ASCII letters, digits, '_' and '-', no empty token.
    /// </summary>
    public static bool IsValid(string? type) => Names.IsDotted(type, MaxLength, maxTokens: 8);
}
