namespace Bridge.Contracts;

/// <summary>WebSocket subprotocols offered on <c>GET /ws</c>.</summary>
public static class Subprotocols
{
    /// <summary>Text frames, one JSON envelope per frame. The default when the client asks for none.</summary>
    public const string Json = "bridge.v1.json";

    /// <summary>Binary frames, one MessagePack map per frame, with the same keys as the JSON envelope.</summary>
    public const string MessagePack = "bridge.v1.msgpack";

    /// <summary>The protocol version announced in <c>welcome</c>.</summary>
    public const int Version = 1;
}
