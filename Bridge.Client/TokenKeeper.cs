using System.Buffers;
using System.Text.Json;
using Bridge.Client.Protocol;
using Bridge.Contracts;
using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// The access token: fetched from <see cref="BridgeClientOptions.TokenProvider"/> before the first connection, asked
/// for again when the server refuses it, and renewed on the open connection with <c>auth.refresh</c> before its
/// <c>exp</c> (docs/protocol.md §1.1).
/// </summary>
internal sealed class TokenKeeper(BridgeClientOptions options, ILogger logger)
{
    private readonly TimeProvider _time = options.TimeProvider;
    private volatile string? _token;
    private bool _fetched;

    /// <summary>The token the next connection sends (<c>access_token</c>), or null for none.</summary>
    public string? Current => _token;

    /// <summary>Asks the provider for the first token, until that succeeds once; the provider's exception propagates.</summary>
    public async ValueTask EnsureFetchedAsync(CancellationToken cancellationToken)
    {
        if (!_fetched && options.TokenProvider is { } provider)
        {
            _token = await provider(cancellationToken).ConfigureAwait(false);
        }

        _fetched = true;
    }

    /// <summary>
    /// The server refused the token (close 4001/4003, HTTP 401/403): asks the provider for a new one. True when it
    /// gave one that differs from the refused token (reconnect at once); false when it gave none, the same, or threw.
    /// </summary>
    public async ValueTask<bool> RenewAfterRefusalAsync(CancellationToken cancellationToken)
    {
        string? fresh;
        try
        {
            fresh = options.TokenProvider is { } provider ? await provider(cancellationToken).ConfigureAwait(false) : null;
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            logger.AttemptFailed("the token provider failed", ex);
            return false;
        }

        if (fresh is null || fresh == _token)
        {
            return false;
        }

        _token = fresh;
        return true;
    }

    /// <summary>Renews the token <see cref="BridgeClientOptions.RefreshBeforeExpiry"/> before its <c>exp</c> and tells
    /// the server on <paramref name="connection"/>, until the connection ends.</summary>
    public async Task RefreshLoopAsync(Connection connection)
    {
        if (options.TokenProvider is not { } provider || options.RefreshBeforeExpiry <= TimeSpan.Zero)
        {
            return;
        }

        try
        {
            while (Backoff.JwtExpiry(_token) is { } expiry)
            {
                var wait = expiry - options.RefreshBeforeExpiry - _time.GetUtcNow();
                if (wait > TimeSpan.Zero)
                {
                    // Task.Delay holds at most ~49 days; a later expiry is reached in steps.
                    await Task.Delay(wait < TimeSpan.FromDays(1) ? wait : TimeSpan.FromDays(1), _time, connection.Token).ConfigureAwait(false);
                    continue;
                }

                var fresh = await provider(connection.Token).ConfigureAwait(false);
                if (fresh is null || fresh == _token)
                {
                    return; // nothing new: the server closes with 4001 and the provider is asked again then
                }

                if (connection.TrySendRequest(RequestKind.Refresh, MessageTypes.AuthRefresh, null, RefreshPayload(fresh)) is not { } request)
                {
                    return; // the connection ended
                }

                await request.Answer.WaitAsync(connection.Token).ConfigureAwait(false);
                _token = fresh;
                logger.TokenRefreshed();
            }
        }
        catch (OperationCanceledException) when (connection.Token.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            // A refused token (`unauthorized`), a lost connection (`disconnected`) or a failing provider: the
            // connection keeps its token until the server closes it with 4001, which asks the provider again.
            logger.TokenRefreshFailed(ex);
        }
    }

    private static byte[] RefreshPayload(string token)
    {
        var payload = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(payload))
        {
            writer.WriteStartObject();
            writer.WriteString("token", token);
            writer.WriteEndObject();
        }

        return payload.WrittenSpan.ToArray();
    }
}
