using Bridge.Contracts;
using Bridge.Testing;

namespace Bridge.Tests.Infrastructure;

/// <summary>Batch <c>room.join</c>s (docs/protocol.md §4) and their answers, as the batch tests send and read them.</summary>
internal static class BatchJoins
{
    /// <summary>A batch <c>room.join</c> of <paramref name="rooms"/>, live (no options), with the id <paramref name="id"/>.</summary>
    public static Dictionary<string, object?> Batch(string id, IEnumerable<string> rooms) => new()
    {
        ["type"] = MessageTypes.RoomJoin,
        ["id"] = id,
        ["payload"] = new Dictionary<string, object?> { ["rooms"] = rooms.Select(r => (object?)new Dictionary<string, object?> { ["room"] = r }).ToList() },
    };

    /// <summary>The next <paramref name="count"/> answers to joins (<c>room.joined</c> or <c>error</c>) on <paramref name="client"/>.</summary>
    public static Task<List<Frame>> JoinAnswersAsync(this TestClient client, int count, TimeSpan timeout) =>
        client.CollectAsync(count, f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error, timeout);
}

/// <summary>A worker and one welcomed WebSocket client of it, disposed together (the client first).</summary>
internal sealed class WorkerAndClient : IAsyncDisposable
{
    private WorkerAndClient(WorkerHost worker, TestClient client)
    {
        Worker = worker;
        Client = client;
    }

    public WorkerHost Worker { get; }

    public TestClient Client { get; }

    /// <summary>Starts a worker on <paramref name="nats"/> with <paramref name="settings"/> and connects a client, once welcomed.</summary>
    public static async Task<WorkerAndClient> StartAsync(NatsServerProcess nats, params (string Key, string Value)[] settings)
    {
        var worker = await WorkerHost.StartAsync(nats, settings);
        try
        {
            var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
            await client.FirstFrame;
            return new WorkerAndClient(worker, client);
        }
        catch
        {
            await worker.DisposeAsync();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Worker.DisposeAsync();
    }
}
