using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Bridge.Tests.Infrastructure;

/// <summary>Mints real JWTs (Microsoft.IdentityModel) for the tests: HS256, RS256, ES256, and broken ones.</summary>
public sealed class Tokens : IDisposable
{
    public const string Issuer = "bridge-tests";
    public const string Audience = "bridge";

    private readonly RSA _rsa = RSA.Create(2048);
    private readonly ECDsa _ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly string _dir = Directory.CreateTempSubdirectory("bridge-jwks-").FullName;

    public Tokens()
    {
        JwksPath = Path.Combine(_dir, "jwks.json");
        File.WriteAllText(JwksPath, Jwks());
    }

    public string HmacSecret { get; } = "test-secret-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(24));

    public string JwksPath { get; }

    /// <summary>The public key set (RSA and EC) these tokens are signed with, as a JWKS document.</summary>
    public string JwksJson => Jwks();

    /// <summary>Worker settings that trust these keys, with issuer, audience and no clock skew.</summary>
    public (string, string)[] WorkerSettings(params (string, string)[] more) =>
    [
        ("Bridge:Auth:AllowAnonymous", "false"),
        ("Bridge:Auth:HmacSecret", HmacSecret),
        ("Bridge:Auth:JwksPath", JwksPath),
        ("Bridge:Auth:Issuer", Issuer),
        ("Bridge:Auth:Audience", Audience),
        ("Bridge:Auth:ClockSkew", "00:00:00"),
        .. more,
    ];

    public SigningCredentials Hs256 => new(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(HmacSecret)), SecurityAlgorithms.HmacSha256);

    public SigningCredentials Rs256 => new(new RsaSecurityKey(_rsa) { KeyId = "rsa-1" }, SecurityAlgorithms.RsaSha256);

    public SigningCredentials Es256 => new(new ECDsaSecurityKey(_ec) { KeyId = "ec-1" }, SecurityAlgorithms.EcdsaSha256);

    /// <summary>The RSA public key as PEM: what an attacker has, and might use as an HMAC secret (RS/HS confusion).</summary>
    public string RsaPublicPem => _rsa.ExportSubjectPublicKeyInfoPem();

    public string Create(
        string subject = "alice",
        SigningCredentials? credentials = null,
        TimeSpan? expiresIn = null,
        DateTime? notBefore = null,
        string? audience = Audience,
        string? issuer = Issuer,
        string[]? subRooms = null,
        string[]? pubRooms = null,
        DateTime? issuedAt = null,
        IReadOnlyDictionary<string, object>? claims = null)
    {
        var now = DateTime.UtcNow;
        var all = new Dictionary<string, object> { ["sub"] = subject };
        foreach (var (name, value) in claims ?? new Dictionary<string, object>())
        {
            all[name] = value;
        }

        if (subRooms is not null)
        {
            all["sub_rooms"] = subRooms;
        }

        if (pubRooms is not null)
        {
            all["pub_rooms"] = pubRooms;
        }

        var descriptor = new SecurityTokenDescriptor
        {
            Claims = all,
            Issuer = issuer,
            Audience = audience,
            IssuedAt = issuedAt ?? now.AddMinutes(-1),
            NotBefore = notBefore ?? now.AddMinutes(-1),
            Expires = now + (expiresIn ?? TimeSpan.FromMinutes(10)),
            SigningCredentials = credentials ?? Hs256,
        };
        return new JsonWebTokenHandler { SetDefaultTimesOnTokenCreation = false }.CreateToken(descriptor);
    }

    /// <summary>The payload of <paramref name="token"/> with one claim changed, signature kept: a tampered token.</summary>
    public static string Tamper(string token, string claim, object value)
    {
        var parts = token.Split('.');
        var payload = JsonSerializer.Deserialize<Dictionary<string, object>>(Base64UrlEncoder.Decode(parts[1]))!;
        payload[claim] = value;
        return $"{parts[0]}.{Base64UrlEncoder.Encode(JsonSerializer.Serialize(payload))}.{parts[2]}";
    }

    /// <summary>An unsigned token (<c>alg: none</c>) with the given claims.</summary>
    public static string AlgNone(string subject, string[]? subRooms = null)
    {
        var header = Base64UrlEncoder.Encode("""{"alg":"none","typ":"JWT"}""");
        var exp = DateTimeOffset.UtcNow.AddMinutes(10).ToUnixTimeSeconds();
        var payload = Base64UrlEncoder.Encode(JsonSerializer.Serialize(new Dictionary<string, object?>
        {
            ["sub"] = subject, ["exp"] = exp, ["iss"] = Issuer, ["aud"] = Audience, ["sub_rooms"] = subRooms,
        }));
        return $"{header}.{payload}.";
    }

    /// <summary>HS256 signed with the RSA public key's PEM text as the secret: the classic algorithm confusion.</summary>
    public string RsHsConfusion(string subject = "alice")
    {
        var key = new SymmetricSecurityKey(Encoding.UTF8.GetBytes(RsaPublicPem)) { KeyId = "rsa-1" };
        return Create(subject, new SigningCredentials(key, SecurityAlgorithms.HmacSha256));
    }

    private string Jwks()
    {
        var rsa = JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(_rsa.ExportParameters(false)) { KeyId = "rsa-1" });
        var ec = JsonWebKeyConverter.ConvertFromECDsaSecurityKey(new ECDsaSecurityKey(ECDsa.Create(_ec.ExportParameters(false))) { KeyId = "ec-1" });
        rsa.Alg = SecurityAlgorithms.RsaSha256;
        ec.Alg = SecurityAlgorithms.EcdsaSha256;
        return JsonSerializer.Serialize(new
        {
            keys = new object[]
            {
                new { kty = rsa.Kty, kid = rsa.Kid, alg = rsa.Alg, use = "sig", n = rsa.N, e = rsa.E },
                new { kty = ec.Kty, kid = ec.Kid, alg = ec.Alg, use = "sig", crv = ec.Crv, x = ec.X, y = ec.Y },
            },
        });
    }

    public void Dispose()
    {
        _rsa.Dispose();
        _ec.Dispose();
        Directory.Delete(_dir, recursive: true);
    }
}
