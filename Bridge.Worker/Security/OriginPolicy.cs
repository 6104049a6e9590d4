using Microsoft.Extensions.Options;

namespace Bridge.Worker.Security;

/// <summary>
/// Cross-site WebSocket hijacking guard: a browser always sends <c>Origin</c>; a page on another site may only
/// connect when its origin is listed. Clients that are not browsers send no Origin and are not affected.
/// </summary>
internal sealed class OriginPolicy(IOptions<AuthOptions> options)
{
    private readonly HashSet<string> _allowed = new(options.Value.AllowedOrigins.Select(Normalize), StringComparer.OrdinalIgnoreCase);

    public bool IsAllowed(HttpRequest request)
    {
        var origin = request.Headers.Origin.ToString();
        if (string.IsNullOrEmpty(origin) || _allowed.Contains("*"))
        {
            return true;
        }

        if (_allowed.Contains(Normalize(origin)))
        {
            return true;
        }

        // Same origin: the page was served by this gateway (e.g. the dashboard at /).
        return Uri.TryCreate(origin, UriKind.Absolute, out var uri) &&
               string.Equals(uri.Authority, request.Host.Value, StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>True for <c>scheme://host[:port]</c> (http or https) with nothing after it.</summary>
    public static bool IsOrigin(string value)
    {
        var trimmed = Normalize(value);
        return Uri.TryCreate(trimmed, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" &&
               string.Equals(uri.GetLeftPart(UriPartial.Authority), trimmed, StringComparison.OrdinalIgnoreCase);
    }

    private static string Normalize(string origin) => origin.TrimEnd('/');
}
