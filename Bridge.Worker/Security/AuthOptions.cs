using System.Text;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Security;

/// <summary>Authentication and origin checks (section <c>Bridge:Auth</c>). See docs/security.md.</summary>
internal sealed class AuthOptions
{
    public const string Section = "Bridge:Auth";

    /// <summary>First token of every user's private room, <c>user.{sub}</c>.</summary>
    public const string UserRoomPrefix = "user";

    /// <summary>Smallest accepted HS256 secret (RFC 7518 §3.2: at least the hash size).</summary>
    public const int MinHmacSecretBytes = 32;

    /// <summary>Connections without a token get the anonymous user with every grant. Development only.</summary>
    public bool AllowAnonymous { get; set; }

    /// <summary>HS256 shared secret (UTF-8, at least 32 bytes).</summary>
    public string? HmacSecret { get; set; }

    /// <summary>A JWKS file with RS256/ES256 public keys.</summary>
    public string? JwksPath { get; set; }

    /// <summary>A JWKS URL with RS256/ES256 public keys, fetched at start and every <see cref="JwksRefreshInterval"/>.</summary>
    public string? JwksUrl { get; set; }

    public TimeSpan JwksRefreshInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Required <c>iss</c>, when set.</summary>
    public string? Issuer { get; set; }

    /// <summary>Required <c>aud</c>, when set.</summary>
    public string? Audience { get; set; }

    /// <summary>Tolerance for <c>exp</c> and <c>nbf</c> against clock differences.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Claim listing the room patterns the user may join.</summary>
    public string SubscribeClaim { get; set; } = "sub_rooms";

    /// <summary>Claim listing the room patterns the user may publish to.</summary>
    public string PublishClaim { get; set; } = "pub_rooms";

    /// <summary>
    /// Claim that makes a token an admin token for the backend API when its value is the JSON boolean <c>true</c>.
    /// Admin tokens connect like any other; only the API reads the claim.
    /// </summary>
    public string AdminClaim { get; set; } = "bridge_admin";

    /// <summary>
    /// Origins allowed to open connections from a browser (exact <c>scheme://host[:port]</c>). Empty: same-origin
    /// requests and requests without an Origin header (non-browser clients) only. <c>*</c>: any origin.
    /// </summary>
    public string[] AllowedOrigins { get; set; } = [];

    public bool HasKeys => !string.IsNullOrEmpty(HmacSecret) || !string.IsNullOrEmpty(JwksPath) || !string.IsNullOrEmpty(JwksUrl);
}

internal sealed class AuthOptionsValidator : IValidateOptions<AuthOptions>
{
    public ValidateOptionsResult Validate(string? name, AuthOptions o)
    {
        var failures = new List<string>();
        if (!o.AllowAnonymous && !o.HasKeys)
        {
            failures.Add("Bridge:Auth: no signing key is configured (HmacSecret, JwksPath or JwksUrl), and anonymous access is off. " +
                         "Configure a key; Bridge:Auth:AllowAnonymous=true is for development only.");
        }

        if (!string.IsNullOrEmpty(o.HmacSecret) && Encoding.UTF8.GetByteCount(o.HmacSecret) < AuthOptions.MinHmacSecretBytes)
        {
            failures.Add($"Bridge:Auth:HmacSecret must be at least {AuthOptions.MinHmacSecretBytes} bytes.");
        }

        if (!string.IsNullOrEmpty(o.JwksUrl) &&
            (!Uri.TryCreate(o.JwksUrl, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttps && url.Scheme != Uri.UriSchemeHttp)))
        {
            failures.Add("Bridge:Auth:JwksUrl must be an absolute http(s) URL.");
        }

        if (o.JwksRefreshInterval < TimeSpan.FromSeconds(1) || o.ClockSkew < TimeSpan.Zero || o.ClockSkew > TimeSpan.FromMinutes(5))
        {
            failures.Add("Bridge:Auth:JwksRefreshInterval must be at least 1 s and ClockSkew between 0 and 5 minutes.");
        }

        if (string.IsNullOrWhiteSpace(o.SubscribeClaim) || string.IsNullOrWhiteSpace(o.PublishClaim) || string.IsNullOrWhiteSpace(o.AdminClaim))
        {
            failures.Add("Bridge:Auth:SubscribeClaim, PublishClaim and AdminClaim must be set.");
        }

        foreach (var origin in o.AllowedOrigins)
        {
            if (origin != "*" && !OriginPolicy.IsOrigin(origin))
            {
                failures.Add($"Bridge:Auth:AllowedOrigins entry '{origin}' must be '*' or scheme://host[:port] without a path.");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
