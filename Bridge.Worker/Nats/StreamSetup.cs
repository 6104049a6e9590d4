using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

/// <summary>
/// Creates or updates the room stream at start, idempotently. The worker does not accept traffic until
/// this has succeeded; if NATS stays unreachable past the start-up timeout, the worker fails to start.
/// </summary>
internal sealed partial class StreamSetup(NatsContext nats, IOptions<NatsOptions> options, TimeProvider time, ILogger<StreamSetup> logger)
    : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        using var deadline = new CancellationTokenSource(o.StartupTimeout, time);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        var attempt = 0;
        while (true)
        {
            try
            {
                await nats.Connection.ConnectAsync();
                if (NatsServerRequirement.Refusal(nats.Connection.ServerInfo?.Version, o.Url) is { } refusal)
                {
                    // Not retried: the same server would be refused again. The host stops with this message.
                    LogServerRefused(refusal);
                    throw new InvalidOperationException(refusal);
                }

                await nats.JetStream.CreateOrUpdateStreamAsync(BuildConfig(o), timeout.Token);
                LogStreamReady(o.StreamName, o.RoomPrefix, o.LivePrefix, o.Url);
                return;
            }
            catch (Exception ex) when (!timeout.IsCancellationRequested && ex is NatsException or NatsJSApiException or TimeoutException)
            {
                attempt++;
                LogStreamRetry(ex, o.Url, attempt);
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(2000, 100 * attempt)), time, timeout.Token);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new InvalidOperationException(
                    $"NATS JetStream at {o.Url} was not reachable within {o.StartupTimeout} (Bridge:Nats:StartupTimeout). " +
                    $"Is nats-server (>= {NatsServerRequirement.Minimum}, with -js) running?");
            }
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    internal static StreamConfig BuildConfig(NatsOptions o) =>
        new(o.StreamName, [$"{o.RoomPrefix}.>"])
        {
            Description = "Bridge rooms: one subject per room",
            Retention = StreamConfigRetention.Limits,
            Discard = StreamConfigDiscard.Old,
            MaxAge = o.MaxAge,
            MaxMsgsPerSubject = o.MaxMessagesPerRoom,
            MaxBytes = o.MaxBytes,
            MaxMsgSize = o.MaxMessageBytes,
            Storage = o.Storage == StreamStorage.Memory ? StreamConfigStorage.Memory : StreamConfigStorage.File,
            NumReplicas = o.Replicas,
            DuplicateWindow = o.DuplicateWindow,
            // Unset, nats-server 2.15 allows 1,000 consumers per stream; every history read in progress holds one.
            MaxConsumers = o.MaxConsumers,
            // Direct gets serve history reads (sync, replay) from any replica without a consumer.
            AllowDirect = true,
            // Live delivery: every stored message is republished with its stream sequence and the room's
            // previous sequence; a worker holds one cheap core subscription per active room on these subjects.
            Republish = new Republish { Src = $"{o.RoomPrefix}.>", Dest = $"{o.LivePrefix}.>" },
        };

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Stream {Stream} ready at {Url}: rooms on {RoomPrefix}.>, live on {LivePrefix}.>")]
    private partial void LogStreamReady(string stream, string roomPrefix, string livePrefix, string url);

    [LoggerMessage(EventId = 1003, Level = LogLevel.Critical, Message = "{Refusal}")]
    private partial void LogServerRefused(string refusal);

    [LoggerMessage(EventId = 1002, Level = LogLevel.Warning, Message = "NATS JetStream at {Url} not ready (attempt {Attempt}); retrying")]
    private partial void LogStreamRetry(Exception exception, string url, int attempt);
}
