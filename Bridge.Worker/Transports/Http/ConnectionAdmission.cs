using System.Net;
using Bridge.Contracts;
using Bridge.Worker.Limits;
using Bridge.Worker.Operations;
using Bridge.Worker.Security;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Transports.Http;

/// <summary>
/// An admitted connection: its user, and the connection counts it holds until it is disposed.
/// </summary>
internal sealed class Admission(UserIdentity identity, ConnectionLimits limits, UserConnectionCounter users, IPAddress? ip) : IAsyncDisposable
{
    private int _released;

    public UserIdentity Identity { get; } = identity;

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }

        limits.Release(ip);
        if (!Identity.Anonymous)
        {
            await users.ReleaseAsync(Identity.Subject);
        }
    }
}

/// <summary>
/// The gate every transport passes before it allocates anything for a request: origin, token, then the
/// connection limits. Refusals are plain HTTP answers (401, 403, 429, 503) written before any upgrade or stream,
/// with the same <c>{code, message}</c> body as an <c>error</c> frame. The token itself is never logged.
/// </summary>
internal sealed partial class ConnectionAdmission(
    TokenValidator tokens,
    OriginPolicy origins,
    ConnectionLimits limits,
    UserConnectionCounter users,
    IOptions<AuthOptions> options,
    BridgeMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<ConnectionAdmission> logger)
{
    public const string TokenQueryParameter = "access_token";

    /// <summary>Arms the session's token expiry: it is closed with 4001 when its token runs out.</summary>
    public void WatchExpiry(Connections.ClientSession session) => session.SetIdentity(session.Identity, time, options.Value.ClockSkew);

    /// <summary>Checks origin and token (for requests that hold no connection, e.g. an HTTP publish).</summary>
    public async Task<(UserIdentity? Identity, IResult? Refusal)> AuthenticateAsync(HttpContext context)
    {
        var request = context.Request;
        if (!origins.IsAllowed(request))
        {
            metrics.AuthFailed("origin");
            LogRefused(context.Connection.RemoteIpAddress, "origin", "origin not allowed");
            return (null, HttpErrors.Problem(StatusCodes.Status403Forbidden, ErrorCodes.Forbidden, "this origin is not allowed (Bridge:Auth:AllowedOrigins)"));
        }

        var token = ReadToken(request, out var malformed);
        if (malformed is not null)
        {
            return (null, Unauthorized(context, "malformed", malformed));
        }

        if (token is null)
        {
            return options.Value.AllowAnonymous
                ? (UserIdentity.AnonymousUser, null)
                : (null, Unauthorized(context, "missing", $"a token is required: Authorization: Bearer <jwt> or ?{TokenQueryParameter}=<jwt>"));
        }

        var check = await tokens.ValidateAsync(token);
        return check.Identity is { } identity ? (identity, null) : (null, Unauthorized(context, check.Reason, check.Message));
    }

    /// <summary>Checks origin and token, then counts the connection against the worker, IP and user limits.</summary>
    public async Task<(Admission? Admission, IResult? Refusal)> AdmitAsync(HttpContext context)
    {
        // Shutting down: a connection accepted now would miss the 1012 drain and hold the process until the host's
        // shutdown timeout (30 s). A 503 sends it elsewhere (a balancer retries another worker on 503).
        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            context.Response.Headers.RetryAfter = "1";
            return (null, HttpErrors.Problem(StatusCodes.Status503ServiceUnavailable, ErrorCodes.Unavailable,
                "this worker is shutting down; connect again (another worker will take it)"));
        }

        var (identity, refusal) = await AuthenticateAsync(context);
        if (identity is null)
        {
            return (null, refusal);
        }

        var ip = context.Connection.RemoteIpAddress;
        switch (limits.TryAcquire(ip))
        {
            case "worker":
                metrics.RateLimited("worker_connections");
                context.Response.Headers.RetryAfter = "5";
                return (null, HttpErrors.Problem(StatusCodes.Status503ServiceUnavailable, ErrorCodes.Unavailable,
                    "this worker is at its connection limit; connect again (another worker may take it)"));
            case "ip":
                metrics.RateLimited("ip_connections");
                LogRefused(ip, "ip_connections", "too many connections from this address");
                context.Response.Headers.RetryAfter = "10";
                return (null, HttpErrors.Problem(StatusCodes.Status429TooManyRequests, ErrorCodes.TooManyConnections,
                    "too many connections from this address"));
        }

        if (!identity.Anonymous && !await users.TryAcquireAsync(identity.Subject, context.RequestAborted))
        {
            limits.Release(ip);
            metrics.RateLimited("user_connections");
            LogUserLimit(identity.Subject);
            context.Response.Headers.RetryAfter = "10";
            return (null, HttpErrors.Problem(StatusCodes.Status429TooManyRequests, ErrorCodes.TooManyConnections,
                "this user has too many open connections (Bridge:Limits:MaxConnectionsPerUser)"));
        }

        return (new Admission(identity, limits, users, ip), null);
    }

    /// <summary>The token from <c>Authorization: Bearer</c>, else from the <c>access_token</c> query parameter.</summary>
    private static string? ReadToken(HttpRequest request, out string? malformed)
    {
        malformed = null;
        var header = request.Headers.Authorization.ToString();
        if (!string.IsNullOrEmpty(header))
        {
            // Another scheme, nothing after "Bearer " or more than one word: malformed (not a token whose check would
            // blame its signature).
            var bearer = BearerHeader.IsBearer(header) ? BearerHeader.Token(header) : null;
            if (bearer is null)
            {
                malformed = BearerHeader.Malformed;
            }

            return bearer;
        }

        // Read from the raw query, not request.Query: the parsed collection (with a second copy of the token) would
        // stay cached on the request, and a WebSocket's request lives as long as the connection (~0.7 KB each).
        string? token = null;
        foreach (var pair in new QueryStringEnumerable(request.QueryString.Value))
        {
            if (!pair.DecodeName().Span.Equals(TokenQueryParameter, StringComparison.Ordinal))
            {
                continue;
            }

            if (token is not null)
            {
                malformed = $"{TokenQueryParameter} given more than once";
                return null;
            }

            token = pair.DecodeValue().ToString();
        }

        return string.IsNullOrEmpty(token) ? null : token;
    }

    private IResult Unauthorized(HttpContext context, string reason, string message)
    {
        metrics.AuthFailed(reason);
        LogRefused(context.Connection.RemoteIpAddress, reason, message);
        // RFC 6750 §3: the challenge says the token was missing or invalid (never echoes the token).
        context.Response.Headers.WWWAuthenticate = reason == "missing"
            ? "Bearer"
            : $"Bearer error=\"invalid_token\", error_description=\"{message}\"";
        return HttpErrors.Problem(StatusCodes.Status401Unauthorized, ErrorCodes.Unauthorized, message);
    }

    [LoggerMessage(EventId = 1311, Level = LogLevel.Information, Message = "Refused a connection from {RemoteIp}: {Reason} ({Detail})")]
    private partial void LogRefused(IPAddress? remoteIp, string reason, string detail);

    [LoggerMessage(EventId = 1312, Level = LogLevel.Information, Message = "Refused a connection of user {User}: over the per-user connection limit")]
    private partial void LogUserLimit(string user);
}
