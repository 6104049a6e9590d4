using Bridge.Client.Protocol;
using Bridge.Contracts;
using Microsoft.Extensions.Logging;

namespace Bridge.Client;

/// <summary>
/// One connection's timer: sends refused publishes and joins again when their backoff is over, keeps a quiet
/// connection proven alive, and drops a connection that looks dead. Every rule counts only the time the socket has
/// been silent while the client was waiting to read it (<see cref="Connection.SilentFor"/>): time the client holds
/// the socket back for a slow application is not silence, and a connection that keeps delivering (a long backlog
/// read by a slow application, with the answers queued behind it) is alive, however long its answers take.
/// <list type="bullet">
/// <item>Keep-alive: silent for <see cref="BridgeClientOptions.KeepAliveInterval"/>, the client sends
/// <c>bridge.ping</c> (once per silence); silent for twice that, the connection is dead. Any frame ends the silence,
/// the <c>bridge.pong</c> or whatever was queued before it (an older worker's <c>unknown_type</c> error too).</item>
/// <item>A publish or a request that has waited <see cref="BridgeClientOptions.AckTimeout"/> for its answer, while the
/// socket has also been silent that long, means a dead connection.</item>
/// </list>
/// </summary>
internal sealed class Watchdog(BridgeClientOptions options, Outbox outbox, RoomTable rooms, ILogger logger)
{
    private readonly TimeProvider _time = options.TimeProvider;

    public async Task RunAsync(Connection connection)
    {
        var timeout = options.AckTimeout;
        var keepAlive = options.KeepAliveInterval;
        var shortest = keepAlive > TimeSpan.Zero && keepAlive < timeout ? keepAlive : timeout;
        var period = TimeSpan.FromMilliseconds(Math.Clamp(shortest.TotalMilliseconds / 4, 10, 250));
        using var timer = new PeriodicTimer(period, _time);
        // When the last ping went out (0: none yet). A silence that began before it has had its ping.
        long pingedAt = 0;
        try
        {
            while (await timer.WaitForNextTickAsync(connection.Token).ConfigureAwait(false))
            {
                var now = _time.GetTimestamp();
                var publishSentAt = outbox.Tick(connection, now);
                rooms.RetryDue(connection, now);
                var silent = connection.SilentFor(now);
                string? dead = null;
                if (keepAlive > TimeSpan.Zero && silent > keepAlive)
                {
                    if (silent > keepAlive * 2)
                    {
                        dead = $"no frame from the server for {(long)silent.TotalMilliseconds} ms, a {MessageTypes.Ping} unanswered";
                    }
                    else if (pingedAt == 0 || _time.GetElapsedTime(pingedAt, now) > silent)
                    {
                        var id = connection.NextId();
                        connection.Send(new OutboundFrame(MessageTypes.Ping, null, id));
                        pingedAt = now;
                        logger.PingSent((long)silent.TotalMilliseconds, id);
                    }
                }

                if (dead is null && silent > timeout)
                {
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
