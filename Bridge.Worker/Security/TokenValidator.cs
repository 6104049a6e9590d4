using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Bridge.Worker.Security;

/// <summary>The result of checking a token: an identity, or why it was refused (a metric label and a message).</summary>
internal sealed record TokenCheck(UserIdentity? Identity, string Reason, string Message)
{
    public static TokenCheck Valid(UserIdentity identity) => new(identity, "", "");

    public static TokenCheck Refused(string reason, string message) => new(null, reason, message);
}

/// <summary>
/// Validates JWTs with Microsoft.IdentityModel: signature against <see cref="SigningKeys"/> with HS256, RS256 or
/// ES256 only (an unsigned <c>alg: none</c> token, or a token whose algorithm does not fit the key's type, fails
/// the signature check), <c>exp</c> required, <c>nbf</c>, and <c>iss</c>/<c>aud</c> when configured. Reads the
/// subject, the room grants, <c>iat</c> and the admin claim. A token of a banned user issued before the ban is
/// refused (<see cref="IRevokedTokens"/>: the backend API's bans).
/// </summary>
internal sealed class TokenValidator(SigningKeys keys, IOptions<AuthOptions> options, IRevokedTokens bans)
{
    /// <summary>Longest accepted token: it travels in a header or the query string.</summary>
    public const int MaxTokenLength = 8192;

    /// <summary>Longest accepted subject (it becomes part of message ids and room names).</summary>
    public const int MaxSubjectLength = 256;

    /// <summary>The rule of <see cref="IsValidSubject"/> in words, for the errors that quote it.</summary>
    public static readonly string SubjectRule = $"1-{MaxSubjectLength} characters without control characters";

    /// <summary>
    /// A subject the worker accepts: 1-<see cref="MaxSubjectLength"/> characters (UTF-16 code units), no control
    /// characters. The one rule for a sender (<c>from</c>): a token's <c>sub</c>, a user or <c>from</c> named in the
    /// backend API, and a backend's <c>Bridge-From</c> header read off the stream (RoomMessageReader).
    /// </summary>
    /// <remarks>
    /// Read for every message a backend published with <c>Bridge-From</c>, live and replayed, so it is one vectorized
    /// search (<see cref="ControlCharacters"/>: what <see cref="char.IsControl(char)"/> is true for), not a per-character
    /// delegate.
    /// </remarks>
    public static bool IsValidSubject(string? subject) =>
        !string.IsNullOrEmpty(subject) && subject.Length <= MaxSubjectLength && !subject.AsSpan().ContainsAny(ControlCharacters);

    // U+0000-U+001F and U+007F-U+009F: the characters char.IsControl is true for (Unicode category Cc).
    private static readonly System.Buffers.SearchValues<char> ControlCharacters = System.Buffers.SearchValues.Create(
        [.. Enumerable.Range(0, 0x20).Select(c => (char)c), .. Enumerable.Range(0x7f, 0x21).Select(c => (char)c)]);

    private static readonly string[] Algorithms = [SecurityAlgorithms.HmacSha256, SecurityAlgorithms.RsaSha256, SecurityAlgorithms.EcdsaSha256];

    private readonly JsonWebTokenHandler _handler = new() { MapInboundClaims = false };

    // The parameters of the key set they were built for: rebuilt when SigningKeys swaps in a reloaded set.
    private volatile KeyedParameters? _parameters;

    /// <summary>
    /// What tokens are checked against: built once per key set (the options are fixed at start) and shared by every
    /// validation; a reloaded key set (<see cref="SigningKeys.Current"/> is a new list) gets new parameters.
    /// </summary>
    internal TokenValidationParameters Parameters
    {
        get
        {
            var current = keys.Current;
            var cached = _parameters;
            if (cached is null || !ReferenceEquals(cached.Keys, current))
            {
                // Two validations racing a reload may both build: the same parameters, one of them kept.
                cached = new KeyedParameters(current, Build(current, options.Value));
                _parameters = cached;
            }

            return cached.Parameters;
        }
    }

    public async Task<TokenCheck> ValidateAsync(string token)
    {
        ArgumentNullException.ThrowIfNull(token);
        if (token.Length > MaxTokenLength)
        {
            return TokenCheck.Refused("malformed", $"token longer than {MaxTokenLength} characters");
        }

        var o = options.Value;
        var result = await _handler.ValidateTokenAsync(token, Parameters);
        if (!result.IsValid)
        {
            return Refusal(result.Exception);
        }

        var jwt = (JsonWebToken)result.SecurityToken;
        var subject = jwt.Subject;
        if (!IsValidSubject(subject))
        {
            return TokenCheck.Refused("claims", $"the token needs a 'sub' claim of {SubjectRule}");
        }

        if (!TryReadGrant(jwt, o.SubscribeClaim, out var subscribe, out var bad) || !TryReadGrant(jwt, o.PublishClaim, out var publish, out bad))
        {
            return TokenCheck.Refused("claims", bad!);
        }

        // iat is optional in JWTs; without it a banned user's token cannot be shown to postdate the ban.
        DateTimeOffset? issuedAt = jwt.IssuedAt == DateTime.MinValue ? null : new DateTimeOffset(jwt.IssuedAt, TimeSpan.Zero);
        if (bans.IsRevoked(subject, issuedAt))
        {
            return TokenCheck.Refused("banned", "the user is banned and this token was issued before the ban; get a new token");
        }

        // The JSON boolean true only: a string "true" (or 1) is not an admin grant.
        var admin = jwt.TryGetClaim(o.AdminClaim, out var claim) && claim.ValueType == System.Security.Claims.ClaimValueTypes.Boolean &&
                    string.Equals(claim.Value, "true", StringComparison.OrdinalIgnoreCase);
        return TokenCheck.Valid(new UserIdentity(
            subject, new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero), subscribe!, publish!, IssuedAt: issuedAt, Admin: admin));
    }

    private static TokenValidationParameters Build(IReadOnlyList<SecurityKey> keys, AuthOptions o) => new()
    {
        IssuerSigningKeys = keys,
        ValidAlgorithms = Algorithms,
        RequireSignedTokens = true,
        RequireExpirationTime = true,
        ValidateLifetime = true,
        ClockSkew = o.ClockSkew,
        ValidateIssuer = !string.IsNullOrEmpty(o.Issuer),
        ValidIssuer = o.Issuer,
        ValidateAudience = !string.IsNullOrEmpty(o.Audience),
        ValidAudience = o.Audience,
        ValidateIssuerSigningKey = true,
    };

    private sealed record KeyedParameters(IReadOnlyList<SecurityKey> Keys, TokenValidationParameters Parameters);

    /// <summary>A grant claim: an array of patterns, or one string of patterns separated by spaces. Missing: no rooms.</summary>
    private static bool TryReadGrant(JsonWebToken jwt, string claim, out RoomGrant? grant, out string? error)
    {
        grant = RoomGrant.None;
        error = null;
        var texts = new List<string>();
        foreach (var c in jwt.Claims)
        {
            if (c.Type == claim)
            {
                texts.AddRange(c.Value.Split(' ', StringSplitOptions.RemoveEmptyEntries));
            }
        }

        var patterns = new List<RoomPattern>(texts.Count);
        foreach (var text in texts)
        {
            if (!RoomPattern.TryParse(text, out var pattern))
            {
                error = $"claim '{claim}' has an invalid room pattern; patterns are dot-separated [A-Za-z0-9_-] tokens, '*' and a final '>'";
                return false;
            }

            patterns.Add(pattern!);
        }

        grant = new RoomGrant(patterns);
        return true;
    }

    private static TokenCheck Refusal(Exception? exception) => exception switch
    {
        SecurityTokenExpiredException => TokenCheck.Refused("expired", "the token has expired"),
        SecurityTokenNotYetValidException => TokenCheck.Refused("not_yet_valid", "the token is not valid yet (nbf)"),
        SecurityTokenNoExpirationException => TokenCheck.Refused("claims", "the token has no 'exp' claim"),
        SecurityTokenInvalidAudienceException => TokenCheck.Refused("audience", "the token's audience is not accepted"),
        SecurityTokenInvalidIssuerException => TokenCheck.Refused("issuer", "the token's issuer is not accepted"),
        SecurityTokenInvalidAlgorithmException => TokenCheck.Refused("algorithm", "the token's algorithm is not accepted (HS256, RS256, ES256)"),
        SecurityTokenSignatureKeyNotFoundException or SecurityTokenInvalidSignatureException =>
            TokenCheck.Refused("signature", "the token's signature is not valid"),
        SecurityTokenMalformedException or ArgumentException => TokenCheck.Refused("malformed", "the token is not a well-formed JWT"),
        _ => TokenCheck.Refused("invalid", "the token is not valid"),
    };
}
