namespace Bridge.Worker.Security;

/// <summary>
/// Who a connection is and what it may do, from a validated token (or the development anonymous user).
/// Immutable: <c>auth.refresh</c> replaces a connection's identity as a whole. <see cref="IssuedAt"/> is the token's
/// <c>iat</c> (a ban closes connections whose token is older); <see cref="Admin"/> is its admin claim (backend API).
/// </summary>
internal sealed record UserIdentity(
    string Subject, DateTimeOffset? Expires, RoomGrant Subscribe, RoomGrant Publish, bool Anonymous = false,
    DateTimeOffset? IssuedAt = null, bool Admin = false)
{
    /// <summary>The subject every connection has when anonymous access is allowed (development only).</summary>
    public const string AnonymousSubject = "anonymous";

    public static readonly UserIdentity AnonymousUser = new(AnonymousSubject, null, RoomGrant.All, RoomGrant.All, Anonymous: true);

    /// <summary>The user's private room, <c>user.{sub}</c>, or null when the subject is not a valid room token.</summary>
    public string? PrivateRoom { get; } = Contracts.RoomName.IsValid(Subject) && !Subject.Contains('.', StringComparison.Ordinal)
        ? AuthOptions.UserRoomPrefix + "." + Subject
        : null;

    /// <summary>
    /// True when the user may join <paramref name="room"/>: a room, or a room pattern (a join of a pattern is granted
    /// only when every room it can match is: <c>devices.site-3.*</c> in <c>sub_rooms</c> allows joining that pattern, not
    /// <c>devices.&gt;</c>). A name that is neither is refused.
    /// </summary>
    public bool MayJoin(string room)
    {
        if (!Contracts.RoomName.IsPattern(room))
        {
            return IsPrivate(room) || Subscribe.Allows(room);
        }

        return RoomPattern.TryParse(room, out var pattern) &&
               (IsPrivatePattern(pattern!) || Subscribe.AllowsAll(pattern!));
    }

    public bool MayPublish(string room) => IsPrivate(room) || Publish.Allows(room);

    /// <summary><c>user.{sub}</c> and the rooms below it belong to the user without being listed in the token.</summary>
    private bool IsPrivatePattern(RoomPattern pattern) =>
        PrivateRoom is { } own && RoomPattern.TryParse(own + ".>", out var below) && below!.Covers(pattern);

    private bool IsPrivate(string room) =>
        PrivateRoom is { } own && room.StartsWith(own, StringComparison.Ordinal) && (room.Length == own.Length || room[own.Length] == '.');
}
