using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// One connection's timer: sends refused publishes and joins again when their backoff is over, and drops a
/// connection that looks dead. A connection looks dead when a publish or a request has waited
/// <see cref="BridgeClientOptions.AckTimeout"/> for its answer <b>and</b> the socket has said nothing for as long
/// while the client was reading it. A connection that keeps delivering (a long backlog read by a slow application:
/// the answer is queued behind it) is alive, however long the answer takes.
/// </summary>
internal sealed class Watchdog(BridgeClientOptions options, Outbox outbox, RoomTable rooms, ILogger logger)
{
    private readonly TimeProvider _time = options.TimeProvider;

    public async Task RunAsync(Connection connection)
    {
        var timeout = options.AckTimeout;
        var period = TimeSpan.FromMilliseconds(Math.Clamp(timeout.TotalMilliseconds / 4, 10, 250));
        using var timer = new PeriodicTimer(period, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(connection.Token).ConfigureAwait(false))
            {
                var now = _time.GetTimestamp();
                var publishSentAt = outbox.Tick(connection, now);
                rooms.RetryDue(connection, now);
                if (connection.SilentFor(now) <= timeout)
                {
                    continue;
                }

                string? dead = null;
                if (publishSentAt is { } sent && _time.GetElapsedTime(sent, now) > timeout)
                {
                    // The resend on the next connection carries the same id, so a message that was in fact stored is
                    // not stored again.
                    dead = "ack timeout";
                }
                else if (connection.Requests.Oldest() is { } request && _time.GetElapsedTime(request.SentAt, now) > timeout)
                {
                    dead = $"no answer to {request.Kind} in time";
                }

                if (dead is not null)
                {
                    logger.ConnectionDead(connection.Uri, dead);
                    connection.Abort(dead);
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}
