namespace Bridge.Worker.Connections;

/// <summary>
/// What a join asks for besides its room or pattern, validated where it enters (<c>room.join</c>'s payload, the SSE and
/// long-poll query): <see cref="Since"/> resumes from a stream seq; <see cref="Latest"/> sends the last stored message of
/// the room (of every room a pattern matches) before <c>room.joined</c>; <see cref="MaxRate"/> conflates: at most that
/// many messages per second per room, always the newest.
/// </summary>
internal readonly record struct JoinOptions(ulong? Since = null, bool Latest = false, double? MaxRate = null)
{
    /// <summary>The one wording of a refused <c>maxRate</c>, for every transport.</summary>
    public static string MaxRateMessage => Rooms.ConflatedMember.RateMessage;

    /// <summary>The rule of <see cref="MaxRateMessage"/> without the field's name (a batch names its entry between).</summary>
    public static string MaxRateRule => Rooms.ConflatedMember.RateRule;

    /// <summary>True for a <c>maxRate</c> join: delivered through its room's <see cref="Rooms.ConflationGroup"/>, never read from the stream.</summary>
    public bool IsConflated => MaxRate is not null;

    /// <summary>True when <paramref name="rate"/> is a <c>maxRate</c> this worker accepts (<see cref="Rooms.ConflatedMember.IsValidRate"/>).</summary>
    public static bool IsValidRate(double rate) => Rooms.ConflatedMember.IsValidRate(rate);
}
