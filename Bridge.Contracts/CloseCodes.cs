namespace Bridge.Contracts;

/// <summary>WebSocket close codes the gateway sends.</summary>
public static class CloseCodes
{
    /// <summary>Normal closure.</summary>
    public const int Normal = 1000;

    /// <summary>A text frame was not valid UTF-8 (RFC 6455 §8.1; the WebSocket layer closes the connection).</summary>
    public const int InvalidPayload = 1007;

    /// <summary>A frame exceeded the maximum frame size.</summary>
    public const int MessageTooBig = 1009;

    /// <summary>Unexpected server error.</summary>
    public const int InternalError = 1011;

    /// <summary>The worker is restarting: reconnect (to any worker) and resume.</summary>
    public const int ServiceRestart = 1012;

    /// <summary>The client did not read fast enough and its send queue overflowed: reconnect and resume.</summary>
    public const int SlowConsumer = 4008;

    /// <summary>The token expired (and was not refreshed with <c>auth.refresh</c>): get a new token, then reconnect.</summary>
    public const int TokenExpired = 4001;

    /// <summary>
    /// The connection is not allowed any more: its user was banned through the backend API (reason <c>banned</c>).
    /// Do not reconnect without a new token; tokens issued before the ban are refused with 401.
    /// </summary>
    public const int Forbidden = 4003;

    /// <summary>A backend disconnected the user through the backend API: reconnect with backoff, as after a drop.</summary>
    public const int Disconnected = 4010;

    /// <summary>Too many connections (per user, per IP or per worker): reconnect later, with backoff.</summary>
    public const int TooManyConnections = 4029;
}
