namespace Bridge.Contracts;

/// <summary>Values of <c>code</c> in an <c>error</c> frame. The connection stays open after each of them.</summary>
public static class ErrorCodes
{
    /// <summary>The frame is not a JSON object / MessagePack map, or a field has the wrong kind.</summary>
    public const string BadFrame = "bad_frame";

    /// <summary>A required field (<c>type</c>, <c>room</c>) is missing.</summary>
    public const string MissingField = "missing_field";

    /// <summary>The type is malformed (see <see cref="MessageTypes.IsValid"/>).</summary>
    public const string InvalidType = "invalid_type";

    /// <summary>The type is reserved for the gateway but not one it accepts from clients.</summary>
    public const string UnknownType = "unknown_type";

    /// <summary>An argument in the payload has the wrong kind or range (e.g. <c>since</c> not a non-negative integer).</summary>
    public const string InvalidArgument = "invalid_argument";

    /// <summary>The room name is outside the documented alphabet or length.</summary>
    public const string InvalidRoom = "invalid_room";

    /// <summary>
    /// A join names a room pattern broader than the worker allows (fewer literal tokens before its first wildcard than
    /// <c>Bridge:Connections:MinPatternPrefixTokens</c>, e.g. a bare <c>&gt;</c>). Join a narrower pattern.
    /// </summary>
    public const string PatternTooBroad = "pattern_too_broad";

    /// <summary>The message id is too long or has characters outside printable ASCII.</summary>
    public const string InvalidId = "invalid_id";

    /// <summary>The connection already holds the most rooms allowed.</summary>
    public const string TooManyRooms = "too_many_rooms";

    /// <summary>The room is not joined (e.g. <c>room.leave</c> for a room never joined).</summary>
    public const string NotJoined = "not_joined";

    /// <summary>The message could not be stored (NATS unavailable or timed out). Retry with the same id.</summary>
    public const string PublishFailed = "publish_failed";

    /// <summary>The room could not be activated (NATS unavailable). Retry the join.</summary>
    public const string Unavailable = "unavailable";

    /// <summary>A token in <c>auth.refresh</c> was refused (the connection keeps its current token until it expires).</summary>
    public const string Unauthorized = "unauthorized";

    /// <summary>The user's token does not grant the room (join or publish); the connection stays.</summary>
    public const string Forbidden = "forbidden";

    /// <summary>The connection sent frames faster than its rate limit; the frame was not acted on: retry it later with the same id.</summary>
    public const string RateLimited = "rate_limited";

    /// <summary>HTTP only: a connection limit (per user, per IP address) refused the request.</summary>
    public const string TooManyConnections = "too_many_connections";

    /// <summary><c>presence.query</c> for a room outside the worker's presence patterns (<c>Bridge:Presence:Rooms</c>).</summary>
    public const string PresenceDisabled = "presence_disabled";

    /// <summary>Backend API only: no such operation (HTTP 404).</summary>
    public const string NotFound = "not_found";

    /// <summary>Backend API only: the request, or the answer it asks for, is larger than allowed (HTTP 413).</summary>
    public const string TooLarge = "too_large";

    /// <summary>
    /// HTTP only (publish, backend API): the body's <c>Content-Type</c> is neither JSON nor MessagePack (HTTP 415);
    /// the message names the accepted types.
    /// </summary>
    public const string UnsupportedMediaType = "unsupported_media_type";

    /// <summary>
    /// HTTP only (publish, backend API): the body has a <c>Content-Encoding</c> other than <c>identity</c> (HTTP 415);
    /// bodies are read as sent, never decompressed.
    /// </summary>
    public const string UnsupportedEncoding = "unsupported_encoding";
}
