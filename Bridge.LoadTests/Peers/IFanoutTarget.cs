using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;

namespace Bridge.LoadTests.Peers;

/// <summary>
/// Something that fans room messages out to WebSocket (or SSE) clients: Bridge, SignalR + Redis, or nats-server's
/// own WebSocket listener. Every target gets the same workload, the same payload bytes and the same
/// <see cref="DeliveryTracker"/>; only the wire protocol and the client library differ.
/// </summary>
internal interface IFanoutTarget : IAsyncDisposable
{
    string Name { get; }

    /// <summary>The process whose memory per idle connection is reported (the gateway itself).</summary>
    string GatewayProcess { get; }

    /// <summary>Starts the servers on loopback and registers their processes for sampling.</summary>
    Task StartAsync(ScenarioContext context);

    /// <summary>Connects one subscriber, joins <paramref name="rooms"/> and returns once it receives them.</summary>
    Task<IAsyncDisposable> SubscribeAsync(IReadOnlyList<int> rooms, ScenarioStats stats, CancellationToken cancellationToken);

    Task<IRoomPublisher> CreatePublisherAsync(ScenarioStats stats, CancellationToken cancellationToken);

    IdleEndpoint IdleEndpoint { get; }
}

/// <summary>The backend side: publishes a body to a room.</summary>
internal interface IRoomPublisher : IAsyncDisposable
{
    ValueTask PublishAsync(int room, byte[] body, CancellationToken cancellationToken);

    /// <summary>Returns when everything published so far has been accepted by the server.</summary>
    Task FlushAsync(CancellationToken cancellationToken);
}

internal static class Rooms
{
    public static string Name(int room) => "bench.r" + room.ToString(System.Globalization.CultureInfo.InvariantCulture);

    public static async Task WaitAsync(Func<bool> done, string what, CancellationToken cancellationToken)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!done())
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"{what} did not happen within 60 s");
            }

            await Task.Delay(5, cancellationToken);
        }
    }
}
