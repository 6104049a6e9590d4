namespace Bridge.Worker.Security;

/// <summary>
/// Tokens revoked before they expire: a user's tokens issued before a ban (kept by the backend API's
/// <c>UserBans</c>; the check sits here, the bans above, so security does not depend on the backend API).
/// </summary>
internal interface IRevokedTokens
{
    /// <summary>True when <paramref name="user"/> is banned and a token issued at <paramref name="issuedAt"/> predates the ban.</summary>
    bool IsRevoked(string user, DateTimeOffset? issuedAt);
}
