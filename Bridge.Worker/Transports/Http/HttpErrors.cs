using Bridge.Contracts;

namespace Bridge.Worker.Transports.Http;

/// <summary>HTTP answers for refused requests: the same <c>{code, message}</c> as an <c>error</c> frame's payload.</summary>
internal static class HttpErrors
{
    public static IResult Problem(int status, string code, string message) =>
        Results.Json(new Dictionary<string, string> { ["code"] = code, ["message"] = message }, statusCode: status);

    /// <summary>Refuses (403 <c>forbidden</c>) when the user may not join one of the rooms.</summary>
    public static bool CheckJoin(Security.UserIdentity identity, List<string> rooms, out IResult? error)
    {
        error = null;
        foreach (var room in rooms)
        {
            if (!identity.MayJoin(room))
            {
                error = Problem(StatusCodes.Status403Forbidden, ErrorCodes.Forbidden, $"the token does not grant joining '{room}'");
                return false;
            }
        }

        return true;
    }

    /// <summary>Reads <c>rooms=a,b</c>: 1 to <paramref name="max"/> valid, distinct room names.</summary>
    public static bool TryParseRooms(string? csv, int max, out List<string> rooms, out IResult? error)
    {
        rooms = [];
        error = null;
        if (string.IsNullOrEmpty(csv))
        {
            error = Problem(StatusCodes.Status400BadRequest, ErrorCodes.MissingField, "query parameter 'rooms' is required (rooms=a,b)");
            return false;
        }

        foreach (var room in csv.Split(','))
        {
            if (!RoomName.IsValid(room))
            {
                error = Problem(StatusCodes.Status400BadRequest, ErrorCodes.InvalidRoom, Handlers.RoomFrames.InvalidRoomMessage);
                return false;
            }

            if (!rooms.Contains(room))
            {
                rooms.Add(room);
            }
        }

        if (rooms.Count > max)
        {
            error = Problem(StatusCodes.Status400BadRequest, ErrorCodes.TooManyRooms, $"at most {max} rooms per connection");
            return false;
        }

        return true;
    }
}
