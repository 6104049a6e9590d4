using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.LoadTests.Peers;

/// <summary>
/// Bridge: nats-server (JetStream) and one worker, each its own process. Subscribers are WebSocket clients
/// (JSON or MessagePack subprotocol) or SSE streams; the publisher is a backend publishing through JetStream
/// (every message is stored, then fanned out), 256 publishes in flight.
/// </summary>
internal sealed class BridgeTarget(string configuration, BridgeTransport transport, params (string Key, string Value)[] settings) : IFanoutTarget
{
    private NatsServerProcess? _nats;
    private WorkerProcess? _worker;

    public string Name => transport switch
    {
        BridgeTransport.MessagePack => "Bridge (msgpack)",
        BridgeTransport.Sse => "Bridge (SSE)",
        _ => "Bridge (JSON)",
    } + (WorkerDll is null ? "" : ", baseline worker");

    public string GatewayProcess => WorkerDll is null ? "worker" : "baseline worker";

    /// <summary>Another build's <c>Bridge.Worker.dll</c> (the "before" of a before/after); this build's worker when null.</summary>
    public string? WorkerDll { get; init; }

    public NatsServerProcess Nats => _nats ?? throw new InvalidOperationException("not started");

    public WorkerProcess Worker => _worker ?? throw new InvalidOperationException("not started");

    /// <summary>Gives nats-server a WebSocket listener too (<see cref="NatsServerProcess.WebSocketUrl"/>): the peer of <c>fanout-vs-nats</c>.</summary>
    public bool NatsWebSocket { get; init; }

    public IdleEndpoint IdleEndpoint => new(BenchTokens.WithToken(Worker.WebSocketUrl, BenchTokens.Default), "bridge.v1.json", null, false);

    public async Task StartAsync(ScenarioContext context)
    {
        context.Status = "starting nats-server and the worker";
        _nats = await NatsServerProcess.StartAsync(config: NatsWebSocket ? NatsServerProcess.WebSocketConfig : null);
        (string, string)[] workerSettings = [("Bridge:Connections:MaxRoomsPerConnection", "10000"), .. settings];
        _worker = WorkerDll is null
            ? await WorkerProcess.StartAsync(_nats.Url, configuration, workerSettings)
            : await WorkerProcess.StartDllAsync(_nats.Url, WorkerDll, workerSettings);
        context.Watch(GatewayProcess, _worker.Pid);
        context.Watch("nats-server", _nats.Pid);
        context.Status = "";
    }

    public Task<IAsyncDisposable> SubscribeAsync(IReadOnlyList<int> rooms, ScenarioStats stats, CancellationToken cancellationToken) =>
        SubscribeAsync(Worker.HttpUrl, Worker.WebSocketUrl, transport, [.. rooms.Select(Rooms.Name)], BenchTokens.Default, stats, cancellationToken);

    /// <summary>
    /// One subscriber of a Bridge worker (the harness's own, or a deployment's): an SSE stream of <paramref name="names"/>,
    /// or a WebSocket that joins them in batches of 100; returns once every room is joined.
    /// </summary>
    internal static async Task<IAsyncDisposable> SubscribeAsync(
        Uri http, Uri webSocket, BridgeTransport transport, IReadOnlyList<string> names, string? token, ScenarioStats stats, CancellationToken cancellationToken)
    {
        if (transport == BridgeTransport.Sse)
        {
            var sse = await SseClient.ConnectAsync(http, names, new DeliveryTracker(stats), token, cancellationToken);
            await Rooms.WaitAsync(() => sse.Joined >= names.Count, "SSE room.joined", cancellationToken);
            return sse;
        }

        var client = await LoadClient.ConnectAsync(webSocket, new LoadClientOptions
        {
            MessagePack = transport == BridgeTransport.MessagePack,
            Token = token,
            Tracker = new DeliveryTracker(stats),
            OnClosed = c =>
            {
                if (c.FrameHandlerError is { } failure)
                {
                    stats.ClientFailed(failure);
                }
                else if (c.CloseStatus is { } code and not 1000)
                {
                    stats.Error($"closed by server: {code}");
                }
            },
        }, cancellationToken);
        for (var i = 0; i < names.Count; i += 100)
        {
            await client.JoinAsync(names.Skip(i).Take(100), cancellationToken);
        }

        await Rooms.WaitAsync(() => client.Joined >= names.Count, "room.joined", cancellationToken);
        return client;
    }

    public async Task<IRoomPublisher> CreatePublisherAsync(ScenarioStats stats, CancellationToken cancellationToken)
    {
        var connection = new NatsConnection(new NatsOpts { Url = Nats.Url });
        await connection.ConnectAsync();
        return new JetStreamPublisher(connection, stats);
    }

    public async ValueTask DisposeAsync()
    {
        if (_worker is not null)
        {
            await _worker.DisposeAsync();
        }

        if (_nats is not null)
        {
            await _nats.DisposeAsync();
        }
    }

    private sealed class JetStreamPublisher(NatsConnection connection, ScenarioStats stats) : IRoomPublisher
    {
        private static readonly NatsHeaders Headers = new() { ["Bridge-Type"] = "load.tick" };
        private readonly NatsJSContext _js = new(connection);
        private readonly SemaphoreSlim _window = new(256, 256);

        public async ValueTask PublishAsync(int room, byte[] body, CancellationToken cancellationToken)
        {
            await _window.WaitAsync(cancellationToken);
            _ = CompleteAsync(_js.PublishAsync("rooms." + Rooms.Name(room), body, headers: Headers, cancellationToken: cancellationToken));
        }

        private async Task CompleteAsync(ValueTask<NATS.Client.JetStream.Models.PubAckResponse> publish)
        {
            try
            {
                (await publish).EnsureSuccess();
            }
            catch (Exception ex)
            {
                stats.Error("publish: " + ScenarioContext.Classify(ex));
            }
            finally
            {
                _window.Release();
            }
        }

        public async Task FlushAsync(CancellationToken cancellationToken)
        {
            for (var i = 0; i < 256; i++)
            {
                await _window.WaitAsync(cancellationToken);
            }

            _window.Release(256);
        }

        public async ValueTask DisposeAsync()
        {
            await connection.DisposeAsync();
            _window.Dispose();
        }
    }
}

internal enum BridgeTransport
{
    Json,
    MessagePack,
    Sse,
}
