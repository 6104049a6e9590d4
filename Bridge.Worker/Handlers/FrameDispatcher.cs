using System.Collections.Frozen;
using Bridge.Contracts;
using Bridge.Worker.Connections;
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

    public FrameDispatcher(IEnumerable<IFrameHandler> handlers, PublishHandler publish)
    {
        ArgumentNullException.ThrowIfNull(handlers);
        ArgumentNullException.ThrowIfNull(publish);
        _handlers = handlers.ToFrozenDictionary(h => h.Type, StringComparer.Ordinal);
        _publish = publish;
    }

    /// <summary>Decodes one frame and handles it; every refusal is an <c>error</c> frame and the connection stays.</summary>
    public ValueTask DispatchAsync(ClientSession session, ReadOnlySpan<byte> data, CancellationToken cancellationToken)
    {
        var frame = session.Codec.Decode(data, out var error);
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
