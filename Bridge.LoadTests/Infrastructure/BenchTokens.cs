using System.Security.Cryptography;
using System.Text;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// HS256 tokens for the workers the harness starts (docs/security.md's contract: <c>sub</c>, <c>exp</c>,
/// <c>sub_rooms</c>, <c>pub_rooms</c>; sent as the <c>access_token</c> query parameter). The secret is new for
/// every run of the harness and only ever given to the workers it starts on loopback.
/// </summary>
internal static class BenchTokens
{
    /// <summary>Every room the scenarios use starts with <c>bench.</c>.</summary>
    public static readonly string[] Rooms = ["bench.>"];

    private static readonly JsonWebTokenHandler Handler = new();
    private static readonly Lazy<string> Shared = new(() => Mint("load-client"));

    /// <summary>64 hex characters: 64 bytes of UTF-8, above the worker's 32-byte minimum.</summary>
    public static string Secret { get; } = Convert.ToHexString(RandomNumberGenerator.GetBytes(32));

    private static SigningCredentials Credentials { get; } =
        new(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(Secret)), SecurityAlgorithms.HmacSha256);

    /// <summary>One token shared by the clients of scenarios that do not measure authentication.</summary>
    public static string Default => Shared.Value;

    /// <param name="rooms">The join and publish grants; <see cref="Rooms"/> unless given.</param>
    /// <param name="issuer">The <c>iss</c> claim, for a deployment that requires one.</param>
    /// <param name="audience">The <c>aud</c> claim, for a deployment that requires one.</param>
    public static string Mint(string subject, TimeSpan? lifetime = null, string? secret = null, string[]? rooms = null, string? issuer = null, string? audience = null)
    {
        var now = DateTime.UtcNow;
        return Handler.CreateToken(new SecurityTokenDescriptor
        {
            Claims = new Dictionary<string, object>
            {
                ["sub"] = subject,
                ["sub_rooms"] = rooms ?? Rooms,
                ["pub_rooms"] = rooms ?? Rooms,
            },
            Issuer = issuer,
            Audience = audience,
            IssuedAt = now,
            NotBefore = now,
            Expires = now + (lifetime ?? TimeSpan.FromHours(1)),
            SigningCredentials = secret is null
                ? Credentials
                : new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256),
        });
    }

    /// <summary><paramref name="url"/> with <c>access_token</c> added to its query.</summary>
    public static Uri WithToken(Uri url, string? token)
    {
        if (token is null)
        {
            return url;
        }

        var b = new UriBuilder(url);
        b.Query = (b.Query.Length > 1 ? b.Query[1..] + "&" : "") + "access_token=" + Uri.EscapeDataString(token);
        return b.Uri;
    }
}
