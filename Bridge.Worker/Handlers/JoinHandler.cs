using System.Text.Json;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Handlers;

/// <summary>
/// <c>room.join {room, payload: {since, latest, maxRate}}</c>, or many at once with
/// <c>payload: {rooms: [{room, since, latest, maxRate}]}</c>. <c>room</c> is a room or a room pattern
/// (<c>devices.site-3.&gt;</c>). Everything a client sends is checked here, into a <see cref="JoinOptions"/>; the join itself
/// (replay, latest values, seam, conflation) is <see cref="RoomJoiner"/>'s.
/// </summary>
internal sealed class JoinHandler(RoomJoiner joiner, IOptions<ConnectionOptions> options) : IFrameHandler
{
    public string Type => MessageTypes.RoomJoin;

    public ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        // A batch frame is one request of the connection (protocol §4, "Batch form"), a single join is one too.
        var requests = ReadRequests(session, frame);
        return requests.Count == 1
            ? joiner.StartJoinAsync(session, requests[0].Room, requests[0].Options, frame.Id, cancellationToken)
            : joiner.StartJoinsAsync(session, requests, frame.Id, cancellationToken);
    }

    /// <summary>The joins a frame asks for that may start; every refused one (bad arguments, not granted) is answered here.</summary>
    private List<(string Room, JoinOptions Options)> ReadRequests(ClientSession session, InboundFrame frame)
    {
        using var args = PayloadArgs.Parse(frame);
        var root = args?.RootElement;
        if (frame.Room is not null || root is null || !root.Value.TryGetProperty("rooms", out var list))
        {
            if (RoomFrames.CheckJoinName(frame.Room, options.Value.MinPatternPrefixTokens) is { } refused)
            {
                session.SendError(refused.Code, refused.Message, frame.Id, RoomFrames.NamedRoom(refused.Code, frame.Room));
                return [];
            }

            if (ReadOptions(root, "") is { } bad)
            {
                session.SendError(ErrorCodes.InvalidArgument, bad, frame.Id, frame.Room);
                return [];
            }

            return MayJoin(session, frame.Room!, frame.Id) ? [(frame.Room!, Options(root))] : [];
        }

        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
        {
            session.SendError(ErrorCodes.InvalidArgument, "rooms must be a non-empty array of {room, since}", frame.Id);
            return [];
        }

        // More entries than a connection may join can never all succeed; refused whole, before any error per entry
        // (one frame must not be able to fill the connection's send queue with its answers).
        var max = options.Value.MaxRoomsPerConnection;
        if (list.GetArrayLength() > max)
        {
            session.SendError(ErrorCodes.TooManyRooms, $"rooms has more than {max} entries; a connection may be in at most {max} rooms", frame.Id);
            return [];
        }

        var requests = new List<(string, JoinOptions)>(list.GetArrayLength());
        var index = -1;
        foreach (var item in list.EnumerateArray())
        {
            index++;
            // The entry is named by its index, not echoed: client text does not go back into error messages.
            if (EntryShapeProblem(item, index) is { } shape)
            {
                session.SendError(ErrorCodes.InvalidRoom, shape, frame.Id);
                continue;
            }

            var name = item.GetProperty("room").GetString();
            if (RoomFrames.CheckJoinName(name, options.Value.MinPatternPrefixTokens) is { } refused)
            {
                session.SendError(refused.Code, $"rooms[{index}].room: {refused.Message}", frame.Id, RoomFrames.NamedRoom(refused.Code, name));
                continue;
            }

            if (ReadOptions(item, $" of room '{name}'") is { } bad)
            {
                session.SendError(ErrorCodes.InvalidArgument, bad, frame.Id, name);
                continue;
            }

            if (MayJoin(session, name!, frame.Id))
            {
                requests.Add((name!, Options(item)));
            }
        }

        return requests;
    }

    /// <summary>Why batch entry <paramref name="index"/> names no room string (each case in its own words), or null.</summary>
    private static string? EntryShapeProblem(JsonElement item, int index) =>
        item.ValueKind != JsonValueKind.Object ? $"rooms[{index}] must be an object with a string 'room'"
        : !item.TryGetProperty("room", out var room) || room.ValueKind == JsonValueKind.Null ? $"rooms[{index}].room is required"
        : room.ValueKind != JsonValueKind.String ? $"rooms[{index}].room must be a string"
        : null;

    /// <summary>True when the token grants joining <paramref name="name"/>; otherwise answers <c>forbidden</c>.</summary>
    private static bool MayJoin(ClientSession session, string name, string? reference)
    {
        if (session.Identity.MayJoin(name))
        {
            return true;
        }

        session.SendError(ErrorCodes.Forbidden, $"the token does not grant joining '{name}'", reference, name);
        return false;
    }

    /// <summary>Why the join's arguments are refused (<paramref name="of"/> names the entry), or null when they are valid.</summary>
    private static string? ReadOptions(JsonElement? args, string of)
    {
        if (!PayloadArgs.TryGetUInt64(args, "since", out _))
        {
            return $"since{of} must be a non-negative integer (a seq)";
        }

        if (!PayloadArgs.TryGetBool(args, "latest", out _))
        {
            return $"latest{of} must be true or false";
        }

        return PayloadArgs.TryGetDouble(args, "maxRate", out var rate) && (rate is null || JoinOptions.IsValidRate(rate.Value))
            ? null
            : $"maxRate{of} {JoinOptions.MaxRateRule}";
    }

    /// <summary>The options of arguments <see cref="ReadOptions"/> accepted.</summary>
    private static JoinOptions Options(JsonElement? args)
    {
        PayloadArgs.TryGetUInt64(args, "since", out var since);
        PayloadArgs.TryGetBool(args, "latest", out var latest);
        PayloadArgs.TryGetDouble(args, "maxRate", out var rate);
        return new JoinOptions(since, latest ?? false, rate);
    }
}
