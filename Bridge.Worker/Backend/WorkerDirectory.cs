using System.Buffers.Text;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using Bridge.Worker.Nats;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.KeyValueStore;

namespace Bridge.Worker.Backend;

/// <summary>A running worker as it announces itself: its id, when it started and when it last renewed the entry (unix ms).</summary>
internal sealed record WorkerEntry(
    [property: JsonPropertyName("id")] string Id,
    [property: JsonPropertyName("started_at")] long StartedAt,
    [property: JsonPropertyName("renewed")] long Renewed);

/// <summary>
/// Which workers are running, so that a cluster-wide request knows whose answers to wait for. Each worker keeps an
/// entry in a NATS key-value bucket (memory storage, max age <see cref="ApiOptions.WorkerTtl"/>), renewed every
/// third of it and deleted when it stops; every worker mirrors the bucket through a watch. The entry of a worker that
/// died without stopping lingers at most one TTL (a cluster-wide answer lists it as <c>missing</c> meanwhile).
/// Announced after the worker listens on its NATS subjects (it is registered after <see cref="NatsApiListener"/>).
/// </summary>
internal sealed partial class WorkerDirectory(
    NatsContext nats,
    IOptions<ApiOptions> options,
    IOptions<NatsOptions> natsOptions,
    IOptions<WorkerOptions> worker,
    TimeProvider time,
    ILogger<WorkerDirectory> logger) : BackgroundService
{
    private readonly WatchedBucket<WorkerEntry> _bucket = new(Parse, time);
    private readonly string _key = Base64Url.EncodeToString(Encoding.UTF8.GetBytes(worker.Value.Id));
    private INatsKVStore? _store;

    /// <summary>When this worker started (unix ms).</summary>
    public long StartedAt { get; } = time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>The ids of the workers whose entries are live now.</summary>
    public IReadOnlyList<string> Running()
    {
        var oldest = time.GetUtcNow().ToUnixTimeMilliseconds() - (long)options.Value.WorkerTtl.TotalMilliseconds;
        return [.. _bucket.Current.Values.Where(w => w.Renewed >= oldest).Select(w => w.Id).Order(StringComparer.Ordinal)];
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (!o.Enabled)
        {
            return;
        }

        await _bucket.OpenAsync(
            nats,
            new NatsKVConfig(o.WorkersBucket) { Description = "Bridge: running workers", History = 1, MaxAge = o.WorkerTtl, Storage = NatsKVStorageType.Memory },
            natsOptions.Value,
            cancellationToken);
        _store = _bucket.Store;
        await RenewAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
        await _bucket.WaitLoadedAsync(natsOptions.Value.StartupTimeout, cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_store is null)
        {
            return;
        }

        var watch = _bucket.RunAsync(LogFailed, stoppingToken);
        using var timer = new PeriodicTimer(options.Value.WorkerTtl / 3, time);
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await RenewAsync(stoppingToken);
                }
                catch (Exception ex) when (ex is NatsException or TimeoutException)
                {
                    LogFailed(ex);
                }
            }
        }
        catch (OperationCanceledException)
        {
        }

        await watch;
    }

    /// <summary>
    /// Deletes this worker's entry, so that cluster-wide requests stop waiting for it at once, not after it expires.
    /// Not while NATS is unreachable (stopped before the worker, or gone): the entry then expires after
    /// <see cref="ApiOptions.WorkerTtl"/>, and the stop does not wait for a reconnect. At most the connection's request
    /// timeout otherwise.
    /// </summary>
    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        if (_store is null)
        {
            return;
        }

        var connection = nats.Connection;
        if (connection.ConnectionState != NatsConnectionState.Open)
        {
            LogLeftWithoutDelete(connection.ConnectionState);
            return;
        }

        using var bounded = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        bounded.CancelAfter(connection.Opts.RequestTimeout);
        try
        {
            await _store.DeleteAsync(_key, cancellationToken: bounded.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or NatsTimeoutException or NatsNoRespondersException)
        {
            // Not answered in time (NATS going away): said without the exception's stack.
            LogLeftWithoutDelete(connection.ConnectionState);
        }
        catch (NatsException ex)
        {
            // The server refused it (permissions, a missing bucket): with its diagnostics.
            LogFailed(ex);
        }
    }

    private async Task RenewAsync(CancellationToken cancellationToken)
    {
        var entry = new WorkerEntry(worker.Value.Id, StartedAt, time.GetUtcNow().ToUnixTimeMilliseconds());
        await _store!.PutAsync(_key, JsonSerializer.SerializeToUtf8Bytes(entry), cancellationToken: cancellationToken);
    }

    private static WorkerEntry? Parse(ReadOnlyMemory<byte> bytes)
    {
        try
        {
            return JsonSerializer.Deserialize<WorkerEntry>(bytes.Span) is { Id.Length: > 0 } entry ? entry : null;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    [LoggerMessage(EventId = 6102, Level = LogLevel.Warning, Message = "The workers bucket could not be read or renewed; retrying")]
    private partial void LogFailed(Exception exception);

    [LoggerMessage(EventId = 6103, Level = LogLevel.Information, Message = "Stopped without deleting this worker's entry from the workers bucket (NATS connection {State}); it expires after the worker TTL")]
    private partial void LogLeftWithoutDelete(NatsConnectionState state);
}
