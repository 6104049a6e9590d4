using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Handlers;

/// <summary><c>room.join {room}</c>: the connection receives the room's messages from the moment <c>room.joined</c> is sent.</summary>
internal sealed partial class JoinHandler(RoomRegistry rooms, IOptions<ConnectionOptions> options, ILogger<JoinHandler> logger)
    : IFrameHandler
{
    public string Type => MessageTypes.RoomJoin;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (RoomFrames.RequireRoom(session, frame) is not { } name)
        {
            return;
        }

        if (session.Rooms.ContainsKey(name))
        {
            // Already in: joining again is harmless and answered the same way.
            session.Send(ControlFrames.RoomJoined(name));
            return;
        }

        if (session.Rooms.Count >= options.Value.MaxRoomsPerConnection)
        {
            session.SendError(ErrorCodes.TooManyRooms, $"a connection may be in at most {options.Value.MaxRoomsPerConnection} rooms", frame.Id);
            return;
        }

        var membership = new RoomMembership(session, name, options.Value.SendQueueCapacity);
        try
        {
            membership.Room = await rooms.JoinAsync(name, membership, cancellationToken);
        }
        catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
        {
            LogJoinFailed(ex, session.ConnectionId, name);
            session.SendError(ErrorCodes.Unavailable, "the room could not be joined now; retry", frame.Id);
            return;
        }

        session.Rooms[name] = membership;
        membership.Activate(ControlFrames.RoomJoined(name), afterSeq: 0);
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Connection {ConnectionId} could not join {Room}")]
    private partial void LogJoinFailed(Exception exception, string connectionId, string room);
}
