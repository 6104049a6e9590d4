using Bridge.Contracts;
using Bridge.Worker.Core;
using Bridge.Worker.Security;
using Bridge.Worker.Transports.Http;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Backend;

/// <summary>
/// <c>POST /api/backend/{op}</c>: the backend API over HTTP. The caller shows an API key (<c>X-Api-Key: &lt;key&gt;</c>
/// or <c>Authorization: ApiKey &lt;key&gt;</c>) or an admin token (<c>Authorization: Bearer &lt;jwt&gt;</c> whose
/// admin claim is <c>true</c>); without one: 401, with a token that is not an admin's: 403. The body, at most
/// <see cref="ApiOptions.MaxRequestBytes"/>, goes to <see cref="ApiDispatcher"/> as it is, in the format its
/// <c>Content-Type</c> names (<see cref="ContentTypes.BodyFormatOf"/>: JSON or MessagePack; else 415).
/// </summary>
internal sealed partial class HttpApiEndpoint(
    ApiDispatcher dispatcher,
    ApiKeys keys,
    TokenValidator tokens,
    ApiMetrics metrics,
    IOptions<ApiOptions> options,
    IOptions<AuthOptions> auth,
    ILogger<HttpApiEndpoint> logger)
{
    public const string Pattern = "/api/backend/{op}";

    public const string ApiKeyHeader = "X-Api-Key";

    public async Task HandleAsync(HttpContext context, string op)
    {
        var (caller, refusal) = await AuthenticateAsync(context);
        if (caller is null)
        {
            await refusal!.ExecuteAsync(context);
            return;
        }

        // An unknown operation is 404 before anything about its body (Content-Type, Content-Encoding, size): the
        // dispatcher answers it without reading one.
        if (!ApiDispatcher.Operations.Contains(op))
        {
            await WriteAsync(context, await dispatcher.HandleAsync(op, ReadOnlyMemory<byte>.Empty, WireFormat.Json, caller, int.MaxValue, context.RequestAborted));
            return;
        }

        var contentType = context.Request.ContentType;
        if (ContentTypes.BodyFormatOf(contentType) is not { } format)
        {
            await HttpErrors.UnsupportedMediaType(contentType).ExecuteAsync(context);
            return;
        }

        if (HttpErrors.UnsupportedEncoding(context.Request) is { } encoding)
        {
            await encoding.ExecuteAsync(context);
            return;
        }

        var max = options.Value.MaxRequestBytes;
        if (await HttpBodies.ReadAsync(context.Request, max, context.RequestAborted) is not { } body)
        {
            await HttpErrors.Problem(StatusCodes.Status413PayloadTooLarge, ErrorCodes.TooLarge, $"body larger than {max} bytes (Bridge:Api:MaxRequestBytes)")
                .ExecuteAsync(context);
            return;
        }

        await WriteAsync(context, await dispatcher.HandleAsync(op, body, format, caller, int.MaxValue, context.RequestAborted));
    }

    private static async Task WriteAsync(HttpContext context, ApiReply reply)
    {
        if (reply.RetryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        context.Response.StatusCode = reply.Status;
        context.Response.ContentType = "application/json; charset=utf-8";
        context.Response.ContentLength = reply.Body.Length;
        await context.Response.Body.WriteAsync(reply.Body, context.RequestAborted);
    }

    /// <summary>The caller of an API key or an admin token; otherwise the 401 / 403 to answer.</summary>
    private async Task<(ApiCaller? Caller, IResult? Refusal)> AuthenticateAsync(HttpContext context)
    {
        var request = context.Request;
        string? key = request.Headers[ApiKeyHeader];
        string? bearer = null;
        var malformedBearer = false;
        var authorization = request.Headers.Authorization.ToString();
        if (authorization.StartsWith("ApiKey ", StringComparison.OrdinalIgnoreCase))
        {
            key ??= authorization["ApiKey ".Length..].Trim();
        }
        else if (BearerHeader.IsBearer(authorization))
        {
            bearer = BearerHeader.Token(authorization);
            malformedBearer = bearer is null;
        }

        if (!string.IsNullOrEmpty(key))
        {
            if (keys.Match(key) is { } name)
            {
                return (new ApiCaller("key:" + name, name, "api_key"), null);
            }

            return (null, Unauthorized(context, "key", "the API key is not valid"));
        }

        if (malformedBearer)
        {
            return (null, Unauthorized(context, "malformed", BearerHeader.Malformed));
        }

        if (!string.IsNullOrEmpty(bearer))
        {
            var check = await tokens.ValidateAsync(bearer);
            if (check.Identity is not { } identity)
            {
                return (null, Unauthorized(context, check.Reason, check.Message));
            }

            if (!identity.Admin)
            {
                metrics.AuthFailed("not_admin");
                LogRefused(context.Connection.RemoteIpAddress, "not_admin");
                return (null, HttpErrors.Problem(StatusCodes.Status403Forbidden, ErrorCodes.Forbidden,
                    $"the token is not an admin token (claim '{auth.Value.AdminClaim}': true)"));
            }

            return (new ApiCaller("token:" + identity.Subject, identity.Subject, "admin_token"), null);
        }

        return (null, Unauthorized(context, "missing",
            $"an API key ({ApiKeyHeader}: <key>) or an admin token (Authorization: Bearer <jwt>) is required"));
    }

    private IResult Unauthorized(HttpContext context, string reason, string message)
    {
        metrics.AuthFailed(reason);
        LogRefused(context.Connection.RemoteIpAddress, reason);
        context.Response.Headers.WWWAuthenticate = "ApiKey, Bearer";
        return HttpErrors.Problem(StatusCodes.Status401Unauthorized, ErrorCodes.Unauthorized, message);
    }

    [LoggerMessage(EventId = 6301, Level = LogLevel.Information, Message = "Refused a backend API request from {RemoteIp}: {Reason}")]
    private partial void LogRefused(System.Net.IPAddress? remoteIp, string reason);
}
