using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Bridge.Testing;

/// <summary>
/// The one token minter of the tests, the load harness and the cluster tests: real JWTs made with
/// Microsoft.IdentityModel in the shape docs/security.md describes (<c>sub</c>, <c>exp</c>, <c>sub_rooms</c>,
/// <c>pub_rooms</c>), signed HS256 with <see cref="HmacSecret"/>, RS256 or ES256 with keys of its own (published as a
/// JWKS file for the worker), and broken ones (tampered, <c>alg: none</c>, RS/HS confusion).
/// </summary>
public sealed class Tokens : IDisposable
{
    public const string Issuer = "bridge-tests";
    public const string Audience = "bridge";

    private static readonly JsonWebTokenHandler Handler = new() { SetDefaultTimesOnTokenCreation = false };

    // Made when first used: an RSA key takes a while to generate, and most users only sign HS256.
    private readonly Lazy<RSA> _rsa = new(() => RSA.Create(2048));
    private readonly Lazy<ECDsa> _ec = new(() => ECDsa.Create(ECCurve.NamedCurves.nistP256));
    private readonly Lazy<string> _jwksPath;

    /// <summary>A minter with a random HMAC secret.</summary>
    public Tokens()
        : this("test-secret-" + Convert.ToHexString(RandomNumberGenerator.GetBytes(24)))
    {
    }

    /// <summary>A minter signing HS256 with <paramref name="hmacSecret"/> (the worker's <c>Bridge:Auth:HmacSecret</c>, 32 bytes or more).</summary>
    public Tokens(string hmacSecret)
    {
        HmacSecret = hmacSecret;
        _jwksPath = new Lazy<string>(() =>
        {
            var path = Path.Combine(Directory.CreateTempSubdirectory("bridge-jwks-").FullName, "jwks.json");
            File.WriteAllText(path, Jwks());
            return path;
        });
    }

    public string HmacSecret { get; }

    /// <summary>A file holding <see cref="JwksJson"/> (written when first asked for, deleted on dispose).</summary>
    public string JwksPath => _jwksPath.Value;

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

    public SigningCredentials Hs256 => HmacWith(HmacSecret);

    public SigningCredentials Rs256 => new(new RsaSecurityKey(_rsa.Value) { KeyId = "rsa-1" }, SecurityAlgorithms.RsaSha256);

    public SigningCredentials Es256 => new(new ECDsaSecurityKey(_ec.Value) { KeyId = "ec-1" }, SecurityAlgorithms.EcdsaSha256);

    /// <summary>The RSA public key as PEM: what an attacker has, and might use as an HMAC secret (RS/HS confusion).</summary>
    public string RsaPublicPem => _rsa.Value.ExportSubjectPublicKeyInfoPem();

    /// <summary>HS256 with another secret (a deployment's, or a foreign one).</summary>
    public static SigningCredentials HmacWith(string secret) =>
        new(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(secret)), SecurityAlgorithms.HmacSha256);

    /// <summary><paramref name="url"/> with <c>access_token</c> added to its query (unchanged when <paramref name="token"/> is null).</summary>
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
        return Handler.CreateToken(descriptor);
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
            ["sub"] = subject,
            ["exp"] = exp,
            ["iss"] = Issuer,
            ["aud"] = Audience,
            ["sub_rooms"] = subRooms,
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
        var rsa = JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(_rsa.Value.ExportParameters(false)) { KeyId = "rsa-1" });
        var ec = JsonWebKeyConverter.ConvertFromECDsaSecurityKey(new ECDsaSecurityKey(ECDsa.Create(_ec.Value.ExportParameters(false))) { KeyId = "ec-1" });
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
        if (_rsa.IsValueCreated)
        {
            _rsa.Value.Dispose();
        }

        if (_ec.IsValueCreated)
        {
            _ec.Value.Dispose();
        }

        if (_jwksPath.IsValueCreated)
        {
            Directory.Delete(Path.GetDirectoryName(_jwksPath.Value)!, recursive: true);
        }
    }
}
