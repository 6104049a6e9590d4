namespace Bridge.Worker.Core;

/// <summary>What a payload's bytes are: of a client's frame, a stored message, a backend's publish.</summary>
internal enum PayloadKind
{
    /// <summary>No payload.</summary>
    None = 0,

    /// <summary>The payload holds one UTF-8 JSON value.</summary>
    Json = 1,

    /// <summary>The payload holds raw bytes.</summary>
    Binary = 2,

    /// <summary>
    /// The payload holds one MessagePack value (not a top-level bin), checked at the edge by
    /// <see cref="Bridge.Contracts.PayloadTranscoder.CheckMessagePack(ReadOnlyMemory{byte})"/> or, read off the
    /// stream, by <see cref="Bridge.Contracts.PayloadTranscoder.IsValidMessagePack"/>.
    /// </summary>
    MessagePack = 3,
}
