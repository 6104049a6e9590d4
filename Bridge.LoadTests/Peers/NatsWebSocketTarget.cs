using System.Text;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;
using NATS.Client.Core;

namespace Bridge.LoadTests.Peers;

/// <summary>
/// The ceiling: nats-server's own WebSocket listener (core NATS, nothing stored), NATS.Net clients connecting
/// over ws:// and subscribing to one subject per room; the publisher is a NATS.Net client over TCP.
/// </summary>
internal sealed class NatsWebSocketTarget : IFanoutTarget
{
    private ChildProcess? _server;
    private string _natsUrl = "";
    private Uri? _wsUrl;

    public string Name => "NATS WebSocket (raw)";

    public string GatewayProcess => "nats-server";

    public IdleEndpoint IdleEndpoint => new(_wsUrl!, null, Encoding.ASCII.GetBytes("CONNECT {\"verbose\":false,\"pedantic\":false,\"protocol\":1}\r\nPING\r\n"), false);

    public async Task StartAsync(ScenarioContext context)
    {
        context.Status = "starting nats-server with a WebSocket listener";
        (_server, _natsUrl, _wsUrl) = await ServiceProcess.StartNatsWebSocketAsync(context.Token);
        context.Watch("nats-server", _server.Pid);
        context.Status = "";
    }

    public Task<IAsyncDisposable> SubscribeAsync(IReadOnlyList<int> rooms, ScenarioStats stats, CancellationToken cancellationToken) =>
        SubscribeAsync(_wsUrl!, [.. rooms.Select(Rooms.Name)], stats, cancellationToken);

    /// <summary>
    /// One NATS.Net client connected to a nats-server's WebSocket listener (<paramref name="webSocket"/>), subscribed to
    /// <paramref name="subjects"/> (core subscriptions; each message body is a load payload); returns once the server
    /// has them.
    /// </summary>
    internal static async Task<IAsyncDisposable> SubscribeAsync(Uri webSocket, IReadOnlyList<string> subjects, ScenarioStats stats, CancellationToken cancellationToken)
    {
        // A large client-side buffer: a drop here would be the load client's fault, not the server's.
        var connection = new NatsConnection(new NatsOpts { Url = webSocket.ToString(), SubPendingChannelCapacity = 65_536 });
        await connection.ConnectAsync();
        var subscriber = new Subscriber(connection);
        foreach (var subject in subjects)
        {
            var sub = await connection.SubscribeCoreAsync<byte[]>(subject, cancellationToken: cancellationToken);
            var tracker = new DeliveryTracker(stats);
            subscriber.Loops.Add(Task.Run(async () =>
            {
                await foreach (var msg in sub.Msgs.ReadAllAsync(CancellationToken.None))
                {
                    tracker.OnJsonBody(msg.Data);
                }
            }, CancellationToken.None));
            subscriber.Subs.Add(sub);
        }

        await connection.PingAsync(cancellationToken);
        return subscriber;
    }

    public async Task<IRoomPublisher> CreatePublisherAsync(ScenarioStats stats, CancellationToken cancellationToken)
    {
        var connection = new NatsConnection(new NatsOpts { Url = _natsUrl });
        await connection.ConnectAsync();
        return new CorePublisher(connection);
    }

    public async ValueTask DisposeAsync()
    {
        if (_server is not null)
        {
            await _server.DisposeAsync();
        }
    }

    private sealed class Subscriber(NatsConnection connection) : IAsyncDisposable
    {
        public List<INatsSub<byte[]>> Subs { get; } = [];

        public List<Task> Loops { get; } = [];

        public async ValueTask DisposeAsync()
        {
            foreach (var sub in Subs)
            {
                await sub.DisposeAsync();
            }

            await Task.WhenAll(Loops).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { }, TaskScheduler.Default);
            await connection.DisposeAsync();
        }
    }

    private sealed class CorePublisher(NatsConnection connection) : IRoomPublisher
    {
        public ValueTask PublishAsync(int room, byte[] body, CancellationToken cancellationToken) =>
            connection.PublishAsync(Rooms.Name(room), body, cancellationToken: cancellationToken);

        public Task FlushAsync(CancellationToken cancellationToken) => connection.PingAsync(cancellationToken).AsTask();

        public ValueTask DisposeAsync() => connection.DisposeAsync();
    }
}
