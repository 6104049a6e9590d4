namespace Bridge.Client;

/// <summary>
/// The worker URL of each connection attempt: <see cref="BridgeClientOptions.UriProvider"/>'s answer, else the next
/// of <see cref="BridgeClientOptions.Uris"/> in turn (so a client whose worker went away tries another), else
/// <see cref="BridgeClientOptions.Uri"/>.
/// </summary>
internal sealed class UriRotation
{
    private readonly Func<CancellationToken, ValueTask<Uri>>? _provider;
    private readonly Uri[] _uris;
    private int _next;

    public UriRotation(BridgeClientOptions options)
    {
        _provider = options.UriProvider;
        _uris = options.Uris is { Count: > 0 } list ? [.. list.Select(ToWebSocketUri)]
            : options.Uri is { } uri ? [ToWebSocketUri(uri)]
            : [];
    }

    /// <summary>The URL of the next attempt; the provider's exception propagates (the attempt fails and is retried).</summary>
    public async ValueTask<Uri> NextAsync(CancellationToken cancellationToken)
    {
        if (_provider is not null)
        {
            return ToWebSocketUri(await _provider(cancellationToken).ConfigureAwait(false));
        }

        // Only the connection loop asks, one attempt at a time.
        var uri = _uris[_next];
        _next = (_next + 1) % _uris.Length;
        return uri;
    }

    /// <summary><c>http(s)://host</c> → <c>ws(s)://host/ws</c>; a ws URL is kept.</summary>
    internal static Uri ToWebSocketUri(Uri uri)
    {
        ArgumentNullException.ThrowIfNull(uri);
        var builder = new UriBuilder(uri);
        var defaultPort = builder.Uri.IsDefaultPort;
        builder.Scheme = builder.Scheme switch
        {
            "http" => "ws",
            "https" => "wss",
            _ => builder.Scheme,
        };
        if (defaultPort)
        {
            builder.Port = -1;
        }

        if (builder.Path is "" or "/")
        {
            builder.Path = "/ws";
        }

        return builder.Uri;
    }

    /// <summary>The URL with <c>access_token=<paramref name="token"/></c> added to its query (none when null).</summary>
    internal static Uri WithToken(Uri uri, string? token)
    {
        if (token is null)
        {
            return uri;
        }

        var builder = new UriBuilder(uri);
        var query = builder.Query.TrimStart('?');
        builder.Query = (query.Length > 0 ? query + "&" : "") + "access_token=" + Uri.EscapeDataString(token);
        return builder.Uri;
    }
}
