using Bridge.Worker.Operations;

namespace Bridge.Worker.Rooms;

/// <summary>
/// Counts and logs the stored messages that could not be delivered as stored: a body labelled JSON that is not
/// Unicode JSON (a backend wrote it straight into NATS), and a message one codec failed to encode. The
/// <c>bridge.messages.fallback</c> counter has two small fixed labels: <c>format</c> (<c>json</c>, <c>msgpack</c>, or
/// <c>all</c> for a body read as binary for every format) and <c>outcome</c> (<c>binary</c>, <c>skipped</c>).
/// </summary>
internal sealed partial class MessageFallbacks(BridgeMetrics metrics, ILogger<MessageFallbacks> logger) : IEncodingFailures
{
    /// <summary>A body labelled <c>application/json</c> that is not Unicode JSON is delivered as binary to everyone.</summary>
    public void NotUnicodeJson(string room, ulong seq)
    {
        metrics.MessageFallback("all", "binary");
        LogNotUnicodeJson(room, seq);
    }

    /// <summary>One codec could not encode a message; it went out as <paramref name="outcome"/> for that format.</summary>
    public void EncodeFailed(RoomMessage message, WireFormat format, FallbackOutcome outcome, Exception exception)
    {
        var label = format == WireFormat.Json ? "json" : "msgpack";
        if (outcome == FallbackOutcome.Binary)
        {
            metrics.MessageFallback(label, "binary");
            LogEncodedAsBinary(exception, message.Room, message.Seq, label);
        }
        else
        {
            metrics.MessageFallback(label, "skipped");
            LogSkipped(exception, message.Room, message.Seq, label);
        }
    }

    // Debug: the counter is the alarm (a misbehaving backend could write many such messages).
    [LoggerMessage(EventId = 1205, Level = LogLevel.Debug, Message = "Message {Seq} of room {Room} is labelled JSON but is not valid UTF-8 JSON; delivered as a binary payload")]
    private partial void LogNotUnicodeJson(string room, ulong seq);

    [LoggerMessage(EventId = 1206, Level = LogLevel.Warning, Message = "Message {Seq} of room {Room} could not be encoded for {Format} members; sent to them as a binary payload")]
    private partial void LogEncodedAsBinary(Exception exception, string room, ulong seq, string format);

    [LoggerMessage(EventId = 1207, Level = LogLevel.Error, Message = "Message {Seq} of room {Room} could not be encoded for {Format} members at all; skipped for them")]
    private partial void LogSkipped(Exception exception, string room, ulong seq, string format);
}
