namespace Bridge.Contracts;

/// <summary>
/// The keys of the envelope every frame is (docs/protocol.md §2), the same in JSON and MessagePack. The server
/// writes them in the order the members are declared here and leaves out keys without a value.
/// </summary>
public static class EnvelopeKeys
{
    /// <summary><c>type</c>: the message type (string), in every frame.</summary>
    public const string Type = "type";

    /// <summary><c>room</c>: the room name (string).</summary>
    public const string Room = "room";

    /// <summary><c>id</c>: the client's message id (string), echoed in <c>ack</c> and stored with the message.</summary>
    public const string Id = "id";

    /// <summary><c>seq</c>: the stream sequence (unsigned 64-bit integer), from the server only.</summary>
    public const string Seq = "seq";

    /// <summary><c>ts</c>: when a room message was stored, milliseconds since the Unix epoch, from the server only.</summary>
    public const string Ts = "ts";

    /// <summary><c>from</c>: the sender of a room message (string), set by the server only.</summary>
    public const string From = "from";

    /// <summary><c>enc</c>: JSON only; <see cref="Base64"/> marks a base64 string <c>payload</c> as binary.</summary>
    public const string Enc = "enc";

    /// <summary><c>payload</c>: the message payload, or a control frame's arguments.</summary>
    public const string Payload = "payload";

    /// <summary>The one value of <see cref="Enc"/>: the payload is standard (RFC 4648, padded) base64.</summary>
    public const string Base64 = "base64";
}
