namespace Bridge.Contracts;

/// <summary>WebSocket close codes the gateway sends.</summary>
public static class CloseCodes
{
    /// <summary>Normal closure.</summary>
    public const int Normal = 1000;

    /// <summary>A frame exceeded the maximum frame size.</summary>
    public const int MessageTooBig = 1009;

    /// <summary>Unexpected server error.</summary>
    public const int InternalError = 1011;

    /// <summary>The worker is restarting: reconnect (to any worker) and resume.</summary>
    public const int ServiceRestart = 1012;

    /// <summary>The client did not read fast enough and its send queue overflowed: reconnect and resume.</summary>
    public const int SlowConsumer = 4008;
}
