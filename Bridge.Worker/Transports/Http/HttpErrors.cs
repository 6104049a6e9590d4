using Bridge.Contracts;

namespace Bridge.Worker.Transports.Http;

/// <summary>HTTP answers for refused requests: the same <c>{code, message}</c> as an <c>error</c> frame's payload.</summary>
internal static class HttpErrors
{
    public static IResult Problem(int status, string code, string message) =>
        Results.Json(new Dictionary<string, string> { ["code"] = code, ["message"] = message }, statusCode: status);

    /// <summary>
    /// The 415 for a body whose <c>Content-Type</c> (<paramref name="contentType"/>) is neither JSON nor MessagePack
    /// (<see cref="ContentTypes.BodyFormatOf"/>).
    /// </summary>
    public static IResult UnsupportedMediaType(string? contentType) =>
        Problem(StatusCodes.Status415UnsupportedMediaType, ErrorCodes.UnsupportedMediaType,
            $"Content-Type '{Printable(contentType)}' is not supported: send a JSON body ({NatsSubjects.JsonContentType}) or a MessagePack map ({NatsSubjects.MessagePackContentType})");

    /// <summary>
    /// The 415 for a body with a <c>Content-Encoding</c> other than <c>identity</c>, or a <c>Transfer-Encoding</c> with
    /// a coding other than <c>chunked</c> and <c>identity</c> (<c>gzip, chunked</c>: Kestrel takes the chunks off and
    /// leaves the gzip), each coding of the list compared ignoring case (a blank header is none); or null when the
    /// body is read as sent: bodies are never decompressed, and a compressed one read as it is would be refused as
    /// malformed, with a message that does not say why.
    /// </summary>
    public static IResult? UnsupportedEncoding(HttpRequest request) =>
        Refused(request.Headers.ContentEncoding, "Content-Encoding", "identity", "no Content-Encoding, or identity") ??
        Refused(request.Headers.TransferEncoding, "Transfer-Encoding", "chunked", "no Transfer-Encoding other than chunked");

    private static IResult? Refused(Microsoft.Extensions.Primitives.StringValues header, string name, string allowed, string hint)
    {
        foreach (var value in header)
        {
            foreach (var coding in (value ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries))
            {
                if (!string.Equals(coding, "identity", StringComparison.OrdinalIgnoreCase) &&
                    !string.Equals(coding, allowed, StringComparison.OrdinalIgnoreCase))
                {
                    return Problem(StatusCodes.Status415UnsupportedMediaType, ErrorCodes.UnsupportedEncoding,
                        $"{name} '{Printable(header.ToString())}' is not supported: send the body uncompressed ({hint})");
                }
            }
        }

        return null;
    }

    /// <summary>
    /// The join an HTTP transport (SSE, long-poll) reads from its query: <c>rooms</c>, the join options, and the
    /// identity's grant for each room; false with the refusal to send when any of them fails.
    /// </summary>
    public static bool TryParseJoin(
        HttpContext context, Security.UserIdentity identity, Connections.ConnectionOptions o,
        out List<string> rooms, out Connections.JoinOptions join, out IResult? error)
    {
        join = default;
        // Repeated rooms= parameters are one list, empty ones kept (StringValues' own joining drops them): `rooms=a&rooms=`
        // is refused as `rooms=a,` is.
        return TryParseRooms(string.Join(',', (IEnumerable<string?>)context.Request.Query["rooms"]), o, out rooms, out error) &&
            TryParseJoinOptions(context.Request.Query, out join, out error) &&
            CheckJoin(identity, rooms, out error);
    }

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

    // A header echoed in a message: printable ASCII, at most 100 characters.
    private static string Printable(string? text)
    {
        var shown = new string([.. (text ?? "").Take(100).Select(c => c is >= ' ' and <= '~' ? c : '?')]);
        return text?.Length > 100 ? shown + "..." : shown;
    }

    /// <summary>
    /// Reads <c>rooms=a,b</c>: 1 to <paramref name="o"/>'s <c>MaxRoomsPerStream</c> distinct names, each a valid room or a
    /// valid room pattern that is narrow enough, with at most <c>MaxPatternsPerConnection</c> patterns.
    /// </summary>
    public static bool TryParseRooms(string? csv, Connections.ConnectionOptions o, out List<string> rooms, out IResult? error)
    {
        rooms = [];
        error = null;
        if (string.IsNullOrEmpty(csv))
        {
            error = Problem(StatusCodes.Status400BadRequest, ErrorCodes.MissingField, "query parameter 'rooms' is required (rooms=a,b)");
            return false;
        }

        var patterns = 0;
        foreach (var room in csv.Split(','))
        {
            if (Handlers.RoomFrames.CheckJoinName(room, o.MinPatternPrefixTokens) is { } refused)
            {
                error = Problem(StatusCodes.Status400BadRequest, refused.Code, refused.Message);
                return false;
            }

            if (!rooms.Contains(room))
            {
                rooms.Add(room);
                patterns += RoomName.IsPattern(room) ? 1 : 0;
            }
        }

        if (rooms.Count > o.MaxRoomsPerStream)
        {
            error = Problem(StatusCodes.Status400BadRequest, ErrorCodes.TooManyRooms, $"at most {o.MaxRoomsPerStream} rooms per connection");
            return false;
        }

        if (patterns > o.MaxPatternsPerConnection)
        {
            error = Problem(StatusCodes.Status400BadRequest, ErrorCodes.TooManyRooms, $"at most {o.MaxPatternsPerConnection} room patterns per connection");
            return false;
        }

        return true;
    }

    /// <summary>
    /// Reads the join options of a stream's query (for all its rooms): <c>latest=true|false</c> and <c>maxRate=N</c>
    /// (messages per second per room). Resume positions come from the cursor, not from here.
    /// </summary>
    public static bool TryParseJoinOptions(IQueryCollection query, out Connections.JoinOptions options, out IResult? error)
    {
        options = default;
        error = null;
        var latest = false;
        var latestText = query["latest"].ToString();
        if (latestText.Length > 0 && !bool.TryParse(latestText, out latest))
        {
            error = Problem(StatusCodes.Status400BadRequest, ErrorCodes.InvalidArgument, "latest must be true or false");
            return false;
        }

        double? rate = null;
        var rateText = query["maxRate"].ToString();
        if (rateText.Length > 0)
        {
            if (!double.TryParse(rateText, System.Globalization.NumberStyles.AllowDecimalPoint | System.Globalization.NumberStyles.AllowExponent, System.Globalization.CultureInfo.InvariantCulture, out var r) ||
                !Connections.JoinOptions.IsValidRate(r))
            {
                error = Problem(StatusCodes.Status400BadRequest, ErrorCodes.InvalidArgument, Connections.JoinOptions.MaxRateMessage);
                return false;
            }

            rate = r;
        }

        options = new Connections.JoinOptions(null, latest, rate);
        return true;
    }
}
