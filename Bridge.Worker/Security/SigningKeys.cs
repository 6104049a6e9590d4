using System.Text;
using Microsoft.Extensions.Options;
using Microsoft.IdentityModel.Tokens;

namespace Bridge.Worker.Security;

/// <summary>
/// The keys tokens are checked against: the HS256 secret and the public keys of a JWKS file and/or URL. Loaded
/// at start (a bad key file stops the worker with a clear message), then reloaded every
/// <see cref="AuthOptions.JwksRefreshInterval"/>, so a rotated key set is picked up without a restart. A failed
/// reload keeps the keys it had.
/// </summary>
internal sealed partial class SigningKeys(IOptions<AuthOptions> options, TimeProvider time, ILogger<SigningKeys> logger) : BackgroundService
{
    private static readonly TimeSpan FetchTimeout = TimeSpan.FromSeconds(10);

    private volatile IReadOnlyList<SecurityKey> _keys = [];
    private readonly HttpClient _http = new() { Timeout = FetchTimeout };

    public IReadOnlyList<SecurityKey> Current => _keys;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (o.AllowAnonymous)
        {
            LogAnonymousAllowed(o.HasKeys ? "tokens are still checked when sent" : "no key is configured");
        }

        _keys = await LoadAsync(cancellationToken);
        LogLoaded(_keys.Count);
        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var o = options.Value;
        if (string.IsNullOrEmpty(o.JwksPath) && string.IsNullOrEmpty(o.JwksUrl))
        {
            return;
        }

        using var timer = new PeriodicTimer(o.JwksRefreshInterval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    var keys = await LoadAsync(stoppingToken);
                    if (keys.Count != _keys.Count)
                    {
                        LogLoaded(keys.Count);
                    }

                    _keys = keys;
                }
                catch (Exception ex) when (ex is not OperationCanceledException)
                {
                    LogReloadFailed(ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public override void Dispose()
    {
        _http.Dispose();
        base.Dispose();
    }

    private async Task<IReadOnlyList<SecurityKey>> LoadAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        var keys = new List<SecurityKey>();
        if (!string.IsNullOrEmpty(o.HmacSecret))
        {
            keys.Add(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(o.HmacSecret)) { KeyId = "hmac" });
        }

        if (!string.IsNullOrEmpty(o.JwksPath))
        {
            string json;
            try
            {
                json = await File.ReadAllTextAsync(o.JwksPath, cancellationToken);
            }
            catch (IOException ex)
            {
                throw new InvalidOperationException($"Bridge:Auth:JwksPath '{o.JwksPath}' cannot be read: {ex.Message}", ex);
            }

            keys.AddRange(PublicKeys(json, $"Bridge:Auth:JwksPath '{o.JwksPath}'"));
        }

        if (!string.IsNullOrEmpty(o.JwksUrl))
        {
            string json;
            try
            {
                json = await _http.GetStringAsync(new Uri(o.JwksUrl), cancellationToken);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new InvalidOperationException($"Bridge:Auth:JwksUrl '{o.JwksUrl}' cannot be fetched: {ex.Message}", ex);
            }

            keys.AddRange(PublicKeys(json, $"Bridge:Auth:JwksUrl '{o.JwksUrl}'"));
        }

        return keys;
    }

    /// <summary>The RSA and EC keys of a JWKS. Symmetric keys in a JWKS are refused: a key set is public.</summary>
    private static List<SecurityKey> PublicKeys(string json, string source)
    {
        JsonWebKeySet set;
        try
        {
            set = new JsonWebKeySet(json);
        }
        catch (ArgumentException ex)
        {
            throw new InvalidOperationException($"{source} is not a JWKS document: {ex.Message}", ex);
        }

        var keys = new List<SecurityKey>();
        foreach (var key in set.Keys)
        {
            if (key.Kty is not (JsonWebAlgorithmsKeyTypes.RSA or JsonWebAlgorithmsKeyTypes.EllipticCurve) || key.HasPrivateKey)
            {
                throw new InvalidOperationException(
                    $"{source}: key '{key.Kid}' must be an RSA or EC public key (kty {key.Kty}); symmetric and private keys do not belong in a key set.");
            }

            keys.Add(key);
        }

        if (keys.Count == 0)
        {
            throw new InvalidOperationException($"{source} holds no keys.");
        }

        return keys;
    }

    [LoggerMessage(EventId = 1301, Level = LogLevel.Warning,
        Message = "ANONYMOUS ACCESS IS ON (Bridge:Auth:AllowAnonymous): connections without a token may join and publish to every room; {Detail}. Never use this in production.")]
    private partial void LogAnonymousAllowed(string detail);

    [LoggerMessage(EventId = 1302, Level = LogLevel.Information, Message = "Loaded {Keys} token signing keys")]
    private partial void LogLoaded(int keys);

    [LoggerMessage(EventId = 1303, Level = LogLevel.Warning, Message = "Reloading the token signing keys failed; keeping the current ones")]
    private partial void LogReloadFailed(Exception exception);
}
