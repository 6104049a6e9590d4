using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Handlers;

/// <summary>
/// <c>auth.refresh {payload: {token}}</c>: replaces the connection's token before it expires, for the same user.
/// The answer is <c>auth.refreshed {exp}</c>; a refused token is an <c>unauthorized</c> error and the connection
/// keeps its current token (and its expiry). Rooms the new token no longer grants are left (<c>room.left</c> with
/// reason <c>forbidden</c>).
/// </summary>
internal sealed class AuthRefreshHandler(TokenValidator tokens, IOptions<AuthOptions> options, BridgeMetrics metrics, TimeProvider time) : IFrameHandler
{
    /// <summary>The refusal of a payload that is not an object (an array, a string, bytes...): the same in JSON and MessagePack.</summary>
    public const string PayloadNotObject = "payload must be an object with a string 'token'";

    public string Type => MessageTypes.AuthRefresh;

    public async ValueTask HandleAsync(ClientSession session, InboundFrame frame, CancellationToken cancellationToken)
    {
        if (!PayloadArgs.IsObjectOrNone(frame))
        {
            session.SendError(ErrorCodes.InvalidArgument, PayloadNotObject, frame.Id);
            return;
        }

        if (!PayloadArgs.TryGetString(frame, "token", out var token))
        {
            session.SendError(ErrorCodes.InvalidArgument, "payload.token must be a string", frame.Id);
            return;
        }

        if (string.IsNullOrEmpty(token))
        {
            session.SendError(ErrorCodes.MissingField, "payload.token is required", frame.Id);
            return;
        }

        if (session.Identity.Anonymous)
        {
            session.SendError(ErrorCodes.Unauthorized, "an anonymous connection cannot take a token; open a new connection with it", frame.Id);
            return;
        }

        var check = await RefreshAsync(session, token);
        if (check.Identity is not { } identity)
        {
            session.SendError(ErrorCodes.Unauthorized, check.Message, frame.Id);
            return;
        }

        session.Send(ControlFrames.AuthRefreshed(frame.Id, identity.Expires));
        await session.Rooms.RevokeAsync(identity.MayJoin, session);
    }

    /// <summary>Validates the new token for the open session and, when valid, replaces its identity (and expiry).</summary>
    private async Task<TokenCheck> RefreshAsync(ClientSession session, string token)
    {
        var check = await tokens.ValidateAsync(token);
        if (check.Identity is not { } identity)
        {
            metrics.AuthFailed(check.Reason);
            return check;
        }

        if (!string.Equals(identity.Subject, session.User, StringComparison.Ordinal))
        {
            metrics.AuthFailed("subject");
            return TokenCheck.Refused("subject", "the new token is for another user; open a new connection for it");
        }

        session.SetIdentity(identity, time, options.Value.ClockSkew);
        return check;
    }
}
