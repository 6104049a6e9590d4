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
public sealed class ConnectionStateChangedEventArgs(ConnectionState state, ConnectionState previous) : EventArgs
{
    public ConnectionState State { get; } = state;

    public ConnectionState Previous { get; } = previous;

    /// <summary><see cref="ConnectionState.Reconnecting"/>: the attempt number (0 for the first retry after a drop).</summary>
    public int Attempt { get; init; }

    /// <summary><see cref="ConnectionState.Reconnecting"/>: the wait before the next attempt.</summary>
    public TimeSpan? Delay { get; init; }

    /// <summary>The WebSocket close code of the connection that ended, if it sent one.</summary>
    public int? CloseCode { get; init; }

    /// <summary>The HTTP status of a refused upgrade (401, 429, 503...).</summary>
    public int? HttpStatus { get; init; }

    /// <summary>The close reason, or the error text of a failed attempt.</summary>
    public string? Reason { get; init; }

    /// <summary><see cref="ConnectionState.Open"/>: the worker's URL.</summary>
    public Uri? Uri { get; init; }
}

/// <summary>A room message: an application message, or a gateway message stored in the room (<c>presence.update</c>).</summary>
public sealed class BridgeMessage
{
    public required string Type { get; init; }

    public required string Room { get; init; }

    /// <summary>The publisher's message id, when it gave one.</summary>
    public string? Id { get; init; }

    /// <summary>The stream sequence: increases within a room, not contiguous.</summary>
    public ulong Seq { get; init; }

    /// <summary>When the message was stored.</summary>
    public DateTimeOffset Timestamp { get; init; }

    /// <summary>The sender (token <c>sub</c>, <c>anonymous</c>, or a backend's name); null when unknown.</summary>
    public string? From { get; init; }

    /// <summary>The JSON payload; null when the message has none or a binary one.</summary>
    public JsonElement? Payload { get; init; }

    /// <summary>The binary payload (<c>enc: base64</c> in JSON, <c>bin</c> in MessagePack); null otherwise.</summary>
    public ReadOnlyMemory<byte>? BinaryPayload { get; init; }

    /// <summary>The JSON payload deserialized as <typeparamref name="T"/> (default when there is none).</summary>
    public T? PayloadAs<T>(JsonSerializerOptions? options = null) =>
        Payload is { } payload ? payload.Deserialize<T>(options ?? JsonSerializerOptions.Web) : default;

    public override string ToString() => $"{Type} {Room} seq={Seq} id={Id} from={From} payload={Payload?.GetRawText() ?? (BinaryPayload is { } b ? $"{b.Length} bytes" : "none")}";
}

/// <summary>A stored publish.</summary>
/// <param name="Room">The room it was stored in.</param>
/// <param name="Id">The publish id (generated when the caller gave none), reused on every retry.</param>
/// <param name="Seq">The stream sequence of the stored message.</param>
/// <param name="Duplicate">True when the server had already stored a message with this id (a retry): <paramref name="Seq"/> is the original's.</param>
public sealed record Ack(string Room, string Id, ulong Seq, bool Duplicate);

/// <summary>What a <c>room.joined</c> said.</summary>
/// <param name="Room">The room.</param>
/// <param name="Seq">The room position: every later message of the room is or will be delivered.</param>
/// <param name="Replayed">Messages replayed before it (a resume).</param>
/// <param name="Truncated">The resume point is no longer stored (retention): messages may be missing. Rebuild the
/// room's state with <see cref="BridgeClient.SyncAsync"/>.</param>
public sealed record RoomJoinInfo(string Room, ulong Seq, int Replayed, bool Truncated);

/// <summary>The answer to <c>room.sync</c>: the room's latest messages, oldest first, and its position.</summary>
public sealed record RoomState(string Room, ulong Seq, IReadOnlyList<BridgeMessage> Messages);

/// <summary>One user present in a room, over all workers.</summary>
public sealed record PresenceMember(string User, int Connections, DateTimeOffset Since);

/// <summary>An <c>error</c> frame from the server, or a client-side refusal (<c>queue_full</c>, <c>closed</c>...).</summary>
public sealed class BridgeException : Exception
{
    public BridgeException()
        : this("error", "bridge error")
    {
    }

    public BridgeException(string message)
        : this("error", message)
    {
    }

    public BridgeException(string message, Exception innerException)
        : base(message, innerException)
    {
        Code = "error";
    }

    public BridgeException(string code, string message, string? reference = null)
        : base($"{code}: {message}")
    {
        Code = code;
        Reference = reference;
    }

    /// <summary>An error code of docs/protocol.md §8, or a client one: <c>queue_full</c>, <c>frame_too_big</c>,
    /// <c>duplicate_id</c>, <c>closed</c>, <c>disconnected</c>, <c>unauthorized</c>, <c>timeout</c>.</summary>
    public string Code { get; }

    /// <summary>The id of the refused frame, when known.</summary>
    public string? Reference { get; }
}
