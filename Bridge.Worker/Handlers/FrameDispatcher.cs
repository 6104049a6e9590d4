using System.Collections.Frozen;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Limits;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary>
/// The one handler table: gateway types go to their handler; any other well-formed type is an application
/// message and is published to its room.
/// </summary>
internal sealed class FrameDispatcher
{
    private readonly FrozenDictionary<string, IFrameHandler> _handlers;
    private readonly PublishHandler _publish;
    private readonly MessageRateLimiter _rate;
    private readonly BridgeMetrics _metrics;

    public FrameDispatcher(IEnumerable<IFrameHandler> handlers, PublishHandler publish, MessageRateLimiter rate, BridgeMetrics metrics)
    {
        ArgumentNullException.ThrowIfNull(handlers);
        ArgumentNullException.ThrowIfNull(publish);
        _handlers = handlers.ToFrozenDictionary(h => h.Type, StringComparer.Ordinal);
        _publish = publish;
        _rate = rate;
        _metrics = metrics;
    }

    /// <summary>
    /// Decodes one frame and handles it; every refusal is an <c>error</c> frame and the connection stays. Every
    /// frame, well-formed or not, takes a token from the connection's rate limit; over it, the frame is refused
    /// with <c>rate_limited</c> (carrying its id, so the client can retry it later).
    /// </summary>
    public ValueTask DispatchAsync(ClientSession session, ReadOnlySpan<byte> data, CancellationToken cancellationToken)
    {
        var frame = session.Codec.Decode(data, out var error);
        if (!_rate.TryAcquire(session.ConnectionId))
        {
            _metrics.RateLimited("messages");
            session.SendError(ErrorCodes.RateLimited, "too many frames; slow down and retry with the same id", frame?.Id);
            return ValueTask.CompletedTask;
        }

        if (frame is null)
        {
            session.SendError(ErrorCodes.BadFrame, error.Message, error.Reference);
            return ValueTask.CompletedTask;
        }

        return DispatchAsync(session, frame, cancellationToken);
    }

    public ValueTask DispatchAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        var type = frame.Type;
        if (type is null)
        {
            session.SendError(ErrorCodes.MissingField, "field 'type' is required", frame.Id);
            return ValueTask.CompletedTask;
        }

        return _handlers.TryGetValue(type, out var handler)
            ? handler.HandleAsync(session, frame, cancellationToken)
            : _publish.HandleAsync(session, frame, cancellationToken);
    }
}
