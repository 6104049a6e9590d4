namespace Bridge.Contracts;

/// <summary>WebSocket subprotocols offered on <c>GET /ws</c>.</summary>
public static class Subprotocols
{
    /// <summary>Text frames, one JSON envelope per frame. The default when the client asks for none.</summary>
    public const string Json = "bridge.v1.json";

    /// <summary>Binary frames, one MessagePack map per frame, with the same keys as the JSON envelope.</summary>
    public const string MessagePack = "bridge.v1.msgpack";

    /// <summary>
    /// <see cref="Json"/> with batched server frames: every server-to-client message is a JSON array of one or more
    /// envelopes, in send order (text frames); client frames are as in <see cref="Json"/>.
    /// </summary>
    public const string JsonBatch = "bridge.v1.json-batch";

    /// <summary>
    /// <see cref="MessagePack"/> with batched server frames: every server-to-client message is a MessagePack array of one
    /// or more maps, in send order (binary frames); client frames are as in <see cref="MessagePack"/>.
    /// </summary>
    public const string MessagePackBatch = "bridge.v1.msgpack-batch";

    /// <summary>The protocol version announced in <c>welcome</c>.</summary>
    public const int Version = 1;
}
