using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Handlers;

/// <summary>
/// <c>bridge.ping {id}</c> answers <c>bridge.pong {id}</c>: a client's proof that the connection is alive when its
/// socket has been silent. The answer is queued like every other, behind whatever the connection already has queued,
/// so a client reading a backlog gets it after that backlog (which is itself the proof it needs). It counts against
/// the frame rate limit like any frame (the dispatcher charges it before it gets here).
/// </summary>
internal sealed class PingHandler : IFrameHandler
{
    public string Type => MessageTypes.Ping;

    public ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (frame.Id is null)
        {
            session.SendError(ErrorCodes.MissingField, "field 'id' is required", null);
        }
        else if (!MessageId.IsValid(frame.Id))
        {
            // As a publish's: an id that breaks the id rules is not echoed (ref null).
            session.SendError(ErrorCodes.InvalidId, $"id must be 1-{MessageId.MaxLength} printable ASCII characters without spaces", null);
        }
        else
        {
            session.Send(ControlFrames.Pong(frame.Id));
        }

        return ValueTask.CompletedTask;
    }
}
