namespace Bridge.Worker.Protocol;

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
