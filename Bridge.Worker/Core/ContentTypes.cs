using Bridge.Contracts;

namespace Bridge.Worker.Core;

/// <summary>
/// The one reading of a <c>Content-Type</c> (a NATS header on a stored message, an HTTP request's header): which
/// encoding it names, and the one a payload is stored with.
/// </summary>
internal static class ContentTypes
{
    /// <summary>
    /// The encoding a <c>Content-Type</c> names (case-insensitive, parameters ignored): binary, MessagePack
    /// (<c>application/msgpack</c>, and the <c>application/x-msgpack</c> and <c>application/vnd.msgpack</c> some
    /// libraries write), JSON, or <see cref="PayloadKind.None"/> when absent or anything else.
    /// </summary>
    public static PayloadKind EncodingOf(string? contentType)
    {
        var mediaType = MediaType(contentType);
        if (mediaType.Equals(NatsSubjects.BinaryContentType, StringComparison.OrdinalIgnoreCase))
        {
            return PayloadKind.Binary;
        }

        if (mediaType.Equals(NatsSubjects.MessagePackContentType, StringComparison.OrdinalIgnoreCase) ||
            mediaType.Equals("application/x-msgpack", StringComparison.OrdinalIgnoreCase) ||
            mediaType.Equals("application/vnd.msgpack", StringComparison.OrdinalIgnoreCase))
        {
            return PayloadKind.MessagePack;
        }

        return mediaType.Equals(NatsSubjects.JsonContentType, StringComparison.OrdinalIgnoreCase) ? PayloadKind.Json : PayloadKind.None;
    }

    /// <summary>
    /// The format of an HTTP request body (publish, backend API) by its <c>Content-Type</c>: MessagePack for the
    /// types of <see cref="EncodingOf"/>; JSON for <c>application/json</c>, any <c>application/…+json</c>,
    /// <c>text/plain</c> (what a browser's simple request and many HTTP libraries send by default) or no (or a blank)
    /// <c>Content-Type</c>; null for anything else (a form, multipart, raw bytes, a header without a media type such
    /// as <c>;;;===</c>): the caller answers 415.
    /// </summary>
    public static WireFormat? BodyFormatOf(string? contentType)
    {
        var mediaType = MediaType(contentType);
        return EncodingOf(contentType) switch
        {
            PayloadKind.MessagePack => WireFormat.MessagePack,
            PayloadKind.Json => WireFormat.Json,
            _ when string.IsNullOrWhiteSpace(contentType) ||
                   mediaType.Equals("text/plain", StringComparison.OrdinalIgnoreCase) ||
                   (mediaType.StartsWith("application/", StringComparison.OrdinalIgnoreCase) &&
                    mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)) => WireFormat.Json,
            _ => null,
        };
    }

    /// <summary>The <c>Content-Type</c> a payload of <paramref name="kind"/> is stored with (none: JSON's).</summary>
    public static string Of(PayloadKind kind) => kind switch
    {
        PayloadKind.Binary => NatsSubjects.BinaryContentType,
        PayloadKind.MessagePack => NatsSubjects.MessagePackContentType,
        _ => NatsSubjects.JsonContentType,
    };

    private static ReadOnlySpan<char> MediaType(string? contentType)
    {
        var mediaType = contentType.AsSpan();
        var parameters = mediaType.IndexOf(';');
        return (parameters >= 0 ? mediaType[..parameters] : mediaType).Trim();
    }
}
