namespace Bridge.Worker.Security;

/// <summary>
/// <c>Authorization: Bearer &lt;jwt&gt;</c> (RFC 6750 §2.1): the scheme in any case, then one token. A header with
/// nothing after the scheme or more than one word after it is malformed: refused as such, not validated as a token
/// (whose refusal would blame its signature).
/// </summary>
internal static class BearerHeader
{
    public const string Scheme = "Bearer ";

    /// <summary>The refusal of a malformed header (<c>401</c> <c>unauthorized</c>).</summary>
    public const string Malformed = "the Authorization header must be 'Bearer <jwt>': one token after the scheme, nothing else";

    /// <summary>True when <paramref name="header"/> names the Bearer scheme (in any case).</summary>
    public static bool IsBearer(string header) => header.StartsWith(Scheme, StringComparison.OrdinalIgnoreCase);

    /// <summary>The one token of a Bearer header (spaces around it ignored), or null when there is none or more than one word.</summary>
    public static string? Token(string header)
    {
        var token = header.AsSpan(Scheme.Length).Trim();
        foreach (var c in token)
        {
            if (char.IsWhiteSpace(c) || char.IsControl(c))
            {
                return null;
            }
        }

        return token.IsEmpty ? null : token.ToString();
    }
}
