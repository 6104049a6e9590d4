namespace Bridge.Worker.Core;

/// <summary>Encodes room messages into one wire format (each codec of the protocol is one).</summary>
internal interface IMessageEncoder
{
    WireFormat Format { get; }

    /// <summary>Encodes a room message as a complete frame. Called once per message per format.</summary>
    byte[] EncodeMessage(RoomMessage message);
}

/// <summary>Told when a stored message could not be encoded in its stored form (counted and logged by the rooms).</summary>
internal interface IEncodingFailures
{
    /// <summary>One encoder could not encode <paramref name="message"/>; it went out as <paramref name="outcome"/> for that format.</summary>
    void EncodeFailed(RoomMessage message, WireFormat format, FallbackOutcome outcome, Exception exception);
}

/// <summary>What a stored message was delivered as when its stored form could not be.</summary>
internal enum FallbackOutcome
{
    /// <summary>Delivered as a binary payload (<c>enc: "base64"</c> in JSON, <c>bin</c> in MessagePack).</summary>
    Binary,

    /// <summary>Not delivered to the members of that format (nor replayed to them).</summary>
    Skipped,
}
