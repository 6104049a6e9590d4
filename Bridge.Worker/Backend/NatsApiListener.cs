using System.Globalization;
using Bridge.Worker.Nats;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Backend;

/// <summary>
/// The backend API over NATS request-reply, and this worker's part of cluster-wide requests.
/// <list type="bullet">
/// <item><c>{prefix}.api.{op}</c> in queue group <c>{prefix}-api</c> (one worker answers each request): the body is
/// the same JSON as over HTTP; the reply is the same JSON body, with header <c>Bridge-Status</c> (the HTTP status)
/// and, for 429, <c>Retry-After</c> (seconds). Whoever may publish there is trusted: NATS account permissions are
/// the protection (docs/security.md). Requests run concurrently, at most <see cref="MaxConcurrentRequests"/>.</item>
/// <item><c>{prefix}.worker.{op}</c>, every worker: <c>info</c>, <c>rooms</c>, <c>disconnect</c>, <c>ban</c>,
/// <c>unban</c> answered from this worker's own state (see <see cref="WorkerScatter"/>).</item>
/// </list>
/// </summary>
internal sealed partial class NatsApiListener(
    NatsContext nats,
    ApiDispatcher dispatcher,
    LocalWorker local,
    UserBans bans,
    IOptions<ApiOptions> options,
    ILogger<NatsApiListener> logger) : BackgroundService
{
    public const string StatusHeader = "Bridge-Status";

    // Requests handled at once per worker; more wait in the subscription's buffer (the queue group spreads the load).
    private const int MaxConcurrentRequests = 32;

    // The reply never names more of a bad request than this.
    private const int MaxOpLength = 32;

    private readonly SemaphoreSlim _slots = new(MaxConcurrentRequests, MaxConcurrentRequests);
    private INatsSub<byte[]>? _api;
    private INatsSub<byte[]>? _worker;

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var o = options.Value;
        if (!o.Enabled)
        {
            return;
        }

        // Subscribed before start-up ends (and before WorkerDirectory announces this worker), so a cluster-wide request
        // never waits for a worker that is listed but not yet listening.
        _worker = await nats.Connection.SubscribeCoreAsync<byte[]>(o.NatsWorkerSubject("*"), cancellationToken: cancellationToken);
        if (o.NatsEnabled)
        {
            _api = await nats.Connection.SubscribeCoreAsync<byte[]>(o.NatsApiSubject("*"), queueGroup: $"{o.NatsPrefix}-api", cancellationToken: cancellationToken);
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (_worker is null)
        {
            return;
        }

        var running = new List<Task> { ServeWorkerAsync(_worker, stoppingToken) };
        if (_api is not null)
        {
            running.Add(ServeApiAsync(_api, stoppingToken));
        }

        await Task.WhenAll(running);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // Unsubscribing first hands new requests to the other workers of the queue group.
        foreach (var sub in new[] { _api, _worker })
        {
            if (sub is not null)
            {
                try
                {
                    await sub.UnsubscribeAsync();
                }
                catch (Exception ex) when (ex is NatsException or TimeoutException or ObjectDisposedException)
                {
                    LogFailed(ex, "unsubscribe");
                }
            }
        }

        await base.StopAsync(cancellationToken);
    }

    private async Task ServeApiAsync(INatsSub<byte[]> sub, CancellationToken stoppingToken)
    {
        var running = new HashSet<Task>();
        try
        {
            await foreach (var msg in sub.Msgs.ReadAllAsync(stoppingToken))
            {
                await _slots.WaitAsync(stoppingToken);
                var task = HandleApiAsync(msg, stoppingToken);
                lock (running)
                {
                    running.Add(task);
                }

                _ = task.ContinueWith(
                    t =>
                    {
                        _slots.Release();
                        lock (running)
                        {
                            running.Remove(t);
                        }
                    },
                    CancellationToken.None,
                    TaskContinuationOptions.ExecuteSynchronously,
                    TaskScheduler.Default);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }

        Task[] left;
        lock (running)
        {
            left = [.. running];
        }

        await Task.WhenAll(left);
    }

    private async Task HandleApiAsync(NatsMsg<byte[]> msg, CancellationToken stoppingToken)
    {
        await Task.Yield();
        if (msg.ReplyTo is null)
        {
            return; // a publish, not a request: nobody to answer
        }

        var op = msg.Subject[(msg.Subject.LastIndexOf('.') + 1)..];
        if (op.Length > MaxOpLength)
        {
            op = op[..MaxOpLength];
        }

        var maxPayload = (int)Math.Min(int.MaxValue, nats.Connection.ServerInfo?.MaxPayload ?? 1 << 20);
        ApiReply reply;
        try
        {
            // A MessagePack body says so in its header; any other body is read as JSON, as before the header was read.
            var format = msg.Headers?.TryGetValue(Contracts.NatsSubjects.ContentTypeHeader, out var contentType) == true &&
                         ContentTypes.EncodingOf(contentType.ToString()) == PayloadKind.MessagePack
                ? WireFormat.MessagePack
                : WireFormat.Json;
            reply = await dispatcher.HandleAsync(op, msg.Data ?? [], format, ApiCaller.Nats, maxPayload, stoppingToken);
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            return;
        }

        if (reply.Body.Length > maxPayload)
        {
            reply = new ApiReply(
                StatusCodes.Status413PayloadTooLarge,
                ApiJson.Problem(Contracts.ErrorCodes.TooLarge, $"the answer is larger than the NATS server's max_payload ({maxPayload} bytes); ask for less (limit) or use HTTP"));
        }

        var headers = new NatsHeaders { [StatusHeader] = reply.Status.ToString(CultureInfo.InvariantCulture) };
        if (reply.RetryAfter is { } wait)
        {
            headers["Retry-After"] = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(CultureInfo.InvariantCulture);
        }

        await ReplyAsync(msg, reply.Body, headers);
    }

    private async Task ServeWorkerAsync(INatsSub<byte[]> sub, CancellationToken stoppingToken)
    {
        try
        {
            await foreach (var msg in sub.Msgs.ReadAllAsync(stoppingToken))
            {
                if (msg.ReplyTo is null || Answer(msg) is not { } answer)
                {
                    continue;
                }

                await ReplyAsync(msg, answer, headers: null);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    /// <summary>This worker's answer to a cluster-wide request, or null when the request is not one (nothing is answered).</summary>
    private byte[]? Answer(NatsMsg<byte[]> msg)
    {
        var op = msg.Subject[(msg.Subject.LastIndexOf('.') + 1)..];
        try
        {
            switch (op)
            {
                case "info":
                    return ApiJson.Serialize(local.Info());
                case "rooms":
                    if (ApiJson.Deserialize<RoomsOrder>(msg.Data) is not { Limit: > 0 } rooms)
                    {
                        return null;
                    }

                    Security.RoomPattern? pattern = null;
                    if (rooms.Pattern is not null && !Security.RoomPattern.TryParse(rooms.Pattern, out pattern))
                    {
                        return null;
                    }

                    return ApiJson.Serialize(local.Rooms(pattern, Math.Min(rooms.Limit, options.Value.MaxRoomsListed)));
                case "disconnect" or "ban" or "unban":
                    if (ApiJson.Deserialize<DisconnectOrder>(msg.Data) is not { User.Length: > 0 } order ||
                        (op == "ban") != order.Ban is not null || order.Ban is { } b && b.User != order.User)
                    {
                        return null;
                    }

                    if (op == "unban")
                    {
                        bans.Forget(order.User);
                        return ApiJson.Serialize(new WorkerDisconnects(local.Id, 0));
                    }

                    if (order.Ban is { } ban)
                    {
                        bans.Apply(ban);
                    }

                    return ApiJson.Serialize(local.Disconnect(order));
                default:
                    return null;
            }
        }
        catch (System.Text.Json.JsonException)
        {
            return null; // not from a worker of this version: no answer, the asker lists this worker as missing
        }
    }

    private async Task ReplyAsync(NatsMsg<byte[]> msg, byte[] body, NatsHeaders? headers)
    {
        try
        {
            await msg.ReplyAsync(body, headers: headers);
        }
        catch (Exception ex) when (ex is NatsException or TimeoutException or ObjectDisposedException)
        {
            LogFailed(ex, "reply");
        }
    }

    [LoggerMessage(EventId = 6401, Level = LogLevel.Warning, Message = "Backend API over NATS: {Step} failed")]
    private partial void LogFailed(Exception exception, string step);
}
