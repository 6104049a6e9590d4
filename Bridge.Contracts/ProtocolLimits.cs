namespace Bridge.Contracts;

/// <summary>
/// The fixed limits of protocol version 1 (docs/protocol.md §3 and §11), shared by the gateway and its clients so
/// both sides refuse the same frames. Configurable limits (<c>Bridge:Connections:MaxFrameBytes</c>) have their default
/// here; a deployment may change them.
/// </summary>
public static class ProtocolLimits
{
    /// <summary>
    /// Most levels of arrays and objects (maps) inside a payload, in both formats. Deeper payloads are refused with
    /// <c>bad_frame</c>; the limit also bounds every recursion over client bytes.
    /// </summary>
    public const int MaxPayloadDepth = 32;

    /// <summary>Most messages one <c>room.sync</c> returns (its <c>limit</c> argument is 1 to this).</summary>
    public const int MaxSyncLimit = 100;

    /// <summary>
    /// Default of the largest inbound WebSocket message and HTTP publish body, in bytes (64 KiB); the worker's
    /// <c>Bridge:Connections:MaxFrameBytes</c>.
    /// </summary>
    public const int DefaultMaxFrameBytes = 64 * 1024;
}
