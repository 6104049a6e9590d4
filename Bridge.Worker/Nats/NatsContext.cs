using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Worker.Nats;

/// <summary>
/// Owns the worker's one NATS connection. Disposal is deliberate: NATS.Net can time out unsubscribing
/// thousands of subscriptions on dispose, and a shutdown must not fail because of it.
/// </summary>
internal sealed partial class NatsContext : IAsyncDisposable
{
    private readonly ILogger<NatsContext> _logger;

    public NatsContext(IOptions<NatsOptions> options, IOptions<WorkerOptions> worker, ILogger<NatsContext> logger)
    {
        _logger = logger;
        Connection = new NatsConnection(new NatsOpts
        {
            Url = options.Value.Url,
            Name = $"bridge-worker {worker.Value.Id}",
            // Keep trying for ever: a worker outlives NATS restarts.
            MaxReconnectRetry = -1,
            SubPendingChannelCapacity = options.Value.RoomFeedCapacity,
            // Header values are UTF-8 both ways (NATS.Net's default is ASCII, which turns every other character into
            // '?'): a sender (Bridge-From, and the de-duplication key Nats-Msg-Id = room/from/id) is any Unicode text,
            // a token's sub or the backend API's from, so "Zoë" arrives as sent and never shares a key with "Zoé".
            HeaderEncoding = System.Text.Encoding.UTF8,
        });
        JetStream = new NatsJSContext(Connection);
    }

    public NatsConnection Connection { get; }

    public INatsJSContext JetStream { get; }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await Connection.DisposeAsync();
        }
        catch (Exception ex)
        {
            LogDisposeFailed(ex);
        }
    }

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning, Message = "Closing the NATS connection failed")]
    private partial void LogDisposeFailed(Exception exception);
}
