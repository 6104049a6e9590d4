using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary>Handles one client message type. Adding a type is adding one handler to the table.</summary>
internal interface IFrameHandler
{
    /// <summary>The type this handler serves, e.g. <c>room.join</c>.</summary>
    string Type { get; }

    ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken);
}
