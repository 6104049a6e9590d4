using System.Text.Json;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Handlers;

/// <summary>
/// <c>room.join {room, payload: {since}}</c>, or many rooms at once with <c>payload: {rooms: [{room, since}]}</c>.
/// The join itself (replay and seam) is <see cref="RoomJoiner"/>'s.
/// </summary>
internal sealed class JoinHandler(RoomJoiner joiner, IOptions<ConnectionOptions> options) : IFrameHandler
{
    public string Type => MessageTypes.RoomJoin;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        foreach (var (name, since) in ReadRequests(session, frame))
        {
            if (!session.Identity.MayJoin(name))
            {
                session.SendError(ErrorCodes.Forbidden, $"the token does not grant joining '{name}'", frame.Id);
                continue;
            }

            await joiner.StartJoinAsync(session, name, since, frame.Id, cancellationToken);
        }
    }

    private List<(string Room, ulong? Since)> ReadRequests(ClientSession session, InboundFrame frame)
    {
        var requests = new List<(string, ulong?)>();
        using var args = PayloadArgs.Parse(frame);
        var root = args?.RootElement;
        if (frame.Room is not null || root is null || !root.Value.TryGetProperty("rooms", out var list))
        {
            if (RoomFrames.RequireRoom(session, frame) is not { } name)
            {
                return requests;
            }

            if (!PayloadArgs.TryGetUInt64(root, "since", out var since))
            {
                session.SendError(ErrorCodes.InvalidArgument, "since must be a non-negative integer (a seq)", frame.Id);
                return requests;
            }

            requests.Add((name, since));
            return requests;
        }

        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
        {
            session.SendError(ErrorCodes.InvalidArgument, "rooms must be a non-empty array of {room, since}", frame.Id);
            return requests;
        }

        // More entries than a connection may join can never all succeed; refused whole, before any error per entry
        // (one frame must not be able to fill the connection's send queue with its answers).
        var max = options.Value.MaxRoomsPerConnection;
        if (list.GetArrayLength() > max)
        {
            session.SendError(ErrorCodes.TooManyRooms, $"rooms has more than {max} entries; a connection may be in at most {max} rooms", frame.Id);
            return requests;
        }

        var index = -1;
        foreach (var item in list.EnumerateArray())
        {
            index++;
            var name = item.ValueKind == JsonValueKind.Object && item.TryGetProperty("room", out var r) && r.ValueKind == JsonValueKind.String
                ? r.GetString()
                : null;
            if (!RoomName.IsValid(name))
            {
                // The entry is named by its index, not echoed: client text does not go back into error messages.
                session.SendError(ErrorCodes.InvalidRoom, $"rooms[{index}] has no valid room; {RoomFrames.InvalidRoomMessage}", frame.Id);
                continue;
            }

            if (!PayloadArgs.TryGetUInt64(item, "since", out var since))
            {
                session.SendError(ErrorCodes.InvalidArgument, $"since of room '{name}' must be a non-negative integer", frame.Id);
                continue;
            }

            requests.Add((name!, since));
        }

        return requests;
    }
}
