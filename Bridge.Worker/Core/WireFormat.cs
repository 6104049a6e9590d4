namespace Bridge.Worker.Core;

/// <summary>The encodings a frame can be written in. Each room message is encoded at most once per format.</summary>
internal enum WireFormat
{
    Json = 0,
    MessagePack = 1,
}

internal static class WireFormats
{
    /// <summary>Number of values of <see cref="WireFormat"/>; sizes per-format caches.</summary>
    public const int Count = 2;
}
