namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// HS256 tokens for the workers the harness starts (docs/security.md's contract: <c>sub</c>, <c>exp</c>,
/// <c>sub_rooms</c>, <c>pub_rooms</c>; sent as the <c>access_token</c> query parameter), minted by the toolkit's
/// <see cref="Tokens"/>. The secret is new for every run of the harness and only ever given to the workers it starts
/// on loopback.
/// </summary>
internal static class BenchTokens
{
    /// <summary>Every room the scenarios use starts with <c>bench.</c>.</summary>
    public static readonly string[] Rooms = ["bench.>"];

    // 64 hex characters: 64 bytes of UTF-8, above the worker's 32-byte minimum.
    private static readonly Tokens Minter = new(Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)));
    private static readonly Lazy<string> Shared = new(() => Mint("load-client"));

    public static string Secret => Minter.HmacSecret;

    /// <summary>One token shared by the clients of scenarios that do not measure authentication.</summary>
    public static string Default => Shared.Value;

    /// <param name="rooms">The join and publish grants; <see cref="Rooms"/> unless given.</param>
    /// <param name="issuer">The <c>iss</c> claim, for a deployment that requires one.</param>
    /// <param name="audience">The <c>aud</c> claim, for a deployment that requires one.</param>
    public static string Mint(string subject, TimeSpan? lifetime = null, string? secret = null, string[]? rooms = null, string? issuer = null, string? audience = null)
    {
        var now = DateTime.UtcNow;
        return Minter.Create(
            subject,
            credentials: secret is null ? null : Tokens.HmacWith(secret),
            expiresIn: lifetime ?? TimeSpan.FromHours(1),
            notBefore: now,
            issuedAt: now,
            audience: audience,
            issuer: issuer,
            subRooms: rooms ?? Rooms,
            pubRooms: rooms ?? Rooms);
    }

    /// <summary><paramref name="url"/> with <c>access_token</c> added to its query.</summary>
    public static Uri WithToken(Uri url, string? token) => Tokens.WithToken(url, token);
}
