namespace Bridge.Worker.Protocol;

/// <summary>
/// A decoded client frame. Whatever the wire format, a non-binary payload arrives here as UTF-8 JSON,
/// which is also how it is stored in the stream, so handlers and backends see one representation.
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
