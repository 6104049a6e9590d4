namespace Bridge.Worker.Protocol;

internal enum PayloadKind
{
    /// <summary>The frame carried no payload.</summary>
    None = 0,

    /// <summary><see cref="InboundFrame.Payload"/> holds one UTF-8 JSON value.</summary>
    Json = 1,

    /// <summary><see cref="InboundFrame.Payload"/> holds raw bytes.</summary>
    Binary = 2,
}

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
