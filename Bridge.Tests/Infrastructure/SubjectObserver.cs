using NATS.Client.Core;

namespace Bridge.Tests.Infrastructure;

/// <summary>A plain NATS subscriber on the test's server that records the subjects messages were published to.</summary>
public sealed class SubjectObserver : IAsyncDisposable
{
    private readonly NatsConnection _connection;
    private readonly INatsSub<byte[]> _subscription;

    private SubjectObserver(NatsConnection connection, INatsSub<byte[]> subscription)
    {
        _connection = connection;
        _subscription = subscription;
    }

    /// <summary>Subscribes to <paramref name="subject"/> (every subject by default) and waits until the server has the subscription.</summary>
    public static async Task<SubjectObserver> StartAsync(string url, string subject = ">")
    {
        var connection = new NatsConnection(new NatsOpts { Url = url });
        var subscription = await connection.SubscribeCoreAsync<byte[]>(subject);
        await connection.PingAsync();
        return new SubjectObserver(connection, subscription);
    }

    /// <summary>The subjects of the messages seen since the last call; a round trip first, so none published before is missed.</summary>
    public async Task<List<string>> DrainAsync()
    {
        await _connection.PingAsync();
        var subjects = new List<string>();
        while (_subscription.Msgs.TryRead(out var msg))
        {
            subjects.Add(msg.Subject);
        }

        return subjects;
    }

    public async ValueTask DisposeAsync()
    {
        await _subscription.DisposeAsync();
        await _connection.DisposeAsync();
    }
}
