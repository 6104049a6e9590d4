namespace Bridge.Contracts;

/// <summary>
/// The NATS side of the contract, for backends that publish to or read from rooms directly with any NATS client.
/// </summary>
public static class NatsSubjects
{
    /// <summary>Default prefix of room subjects: a room <c>a.b</c> is stored on <c>rooms.a.b</c>.</summary>
    public const string DefaultRoomPrefix = "rooms";

    /// <summary>Default prefix the stream republishes stored messages to: <c>live.rooms.a.b</c>.</summary>
    public const string DefaultLivePrefix = "live.rooms";

    /// <summary>Header: the application message type (e.g. <c>chat.message</c>). Missing means <c>message</c>.</summary>
    public const string TypeHeader = "Bridge-Type";

    /// <summary>
    /// Header: who sent the message (user id, or a backend's name), UTF-8: 1-256 characters without control characters,
    /// as a token's <c>sub</c>. The worker leaves out <c>from</c> when a backend's value breaks that rule.
    /// </summary>
    public const string FromHeader = "Bridge-From";

    /// <summary>Header: the client's message id as it sent it (the dedup key is <c>Nats-Msg-Id</c>).</summary>
    public const string IdHeader = "Bridge-Id";

    /// <summary>
    /// Header naming the body's encoding: <see cref="JsonContentType"/> (one UTF-8 JSON value),
    /// <see cref="MessagePackContentType"/> (one MessagePack value) or <see cref="BinaryContentType"/> (raw bytes).
    /// </summary>
    public const string ContentTypeHeader = "Content-Type";

    /// <summary>Content type of a JSON payload.</summary>
    public const string JsonContentType = "application/json";

    /// <summary>
    /// Content type of a MessagePack payload: what a MessagePack client published is stored as it sent it, and a
    /// backend may publish MessagePack with it. MessagePack members receive the bytes as stored, JSON members their
    /// JSON rendering (<see cref="PayloadTranscoder"/>).
    /// </summary>
    public const string MessagePackContentType = "application/msgpack";

    /// <summary>Content type of a binary payload.</summary>
    public const string BinaryContentType = "application/octet-stream";

    /// <summary>JetStream's de-duplication header.</summary>
    public const string MsgIdHeader = "Nats-Msg-Id";

    /// <summary>Type given to a message published without <see cref="TypeHeader"/>.</summary>
    public const string DefaultType = "message";
}
