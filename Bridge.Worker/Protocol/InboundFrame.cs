namespace Bridge.Worker.Protocol;

internal enum PayloadKind
{
    /// <summary>The frame carried no payload.</summary>
    None = 0,

    /// <summary><see cref="InboundFrame.Payload"/> holds one UTF-8 JSON value.</summary>
    Json = 1,

    /// <summary><see cref="InboundFrame.Payload"/> holds raw bytes.</summary>
    Binary = 2,

    /// <summary>
    /// <see cref="InboundFrame.Payload"/> holds one MessagePack value (not a top-level bin), checked at the edge by
    /// <see cref="Bridge.Contracts.PayloadTranscoder.CheckMessagePack(ReadOnlyMemory{byte})"/> or, read off the
    /// stream, by <see cref="Bridge.Contracts.PayloadTranscoder.IsValidMessagePack"/>.
    /// </summary>
    MessagePack = 3,
}

/// <summary>
/// A decoded client frame. A payload is kept in the encoding it arrived in (JSON text from a JSON client, one
/// MessagePack value from a MessagePack client, or bytes) and stored that way; handlers that read arguments see JSON
/// (<see cref="PayloadArgs"/>).
/// </summary>
internal sealed class InboundFrame
{
    public string? Type { get; init; }

    public string? Room { get; init; }

    public string? Id { get; init; }

    public PayloadKind PayloadKind { get; init; }

    public ReadOnlyMemory<byte> Payload { get; init; }
}

/// <summary>Why a frame could not be decoded; becomes an <c>error</c> frame with code <c>bad_frame</c>.</summary>
internal readonly record struct DecodeError(string Message, string? Reference);
