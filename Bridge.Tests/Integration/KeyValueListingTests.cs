using Bridge.Tests.Infrastructure;
using Bridge.Worker.Nats;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.KeyValueStore;

namespace Bridge.Tests.Integration;

/// <summary>
/// The key listing presence reads (<see cref="KeyValueBuckets.KeysAsync"/>) against a real nats-server, on a bucket
/// configured like presence's (one revision per key, in memory) whose keys are rewritten the whole time, as the
/// renewals of every worker rewrite them.
/// </summary>
public sealed class KeyValueListingTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IAsyncLifetime
{
    private const int Keys = 40;
    private const int Listings = 300;
    private readonly string _bucket = "kvl_" + Guid.NewGuid().ToString("N")[..8];
    private NatsConnection _connection = null!;
    private NatsKVContext _kv = null!;
    private INatsKVStore _store = null!;

    public async Task InitializeAsync()
    {
        _connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        _kv = new NatsKVContext(new NatsJSContext(_connection));
        _store = await _kv.CreateStoreAsync(new NatsKVConfig(_bucket) { History = 1, Storage = NatsKVStorageType.Memory });
    }

    public async Task DisposeAsync()
    {
        await _kv.DeleteStoreAsync(_bucket);
        await _connection.DisposeAsync();
    }

    [Fact]
    public async Task A_listing_sees_every_key_that_exists_throughout_while_the_keys_are_rewritten()
    {
        var keys = Enumerable.Range(0, Keys).Select(i => $"room.user{i}.worker").ToArray();
        foreach (var key in keys)
        {
            await _store.PutAsync(key, new byte[] { 1 });
        }

        await _store.PutAsync("other.user.worker", new byte[] { 1 }); // outside the filter: never listed
        using var stop = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        var rewrites = Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested; i++)
            {
                await _store.PutAsync(keys[i % Keys], new byte[] { 2 });
            }
        });

        var misses = new List<int>(); // the number of keys each short listing saw
        try
        {
            for (var i = 0; i < Listings; i++)
            {
                var listed = await KeyValueBuckets.KeysAsync(_store, "room.>", stop.Token);
                if (listed.Distinct().Count() != Keys || listed.Any(k => !k.StartsWith("room.", StringComparison.Ordinal)))
                {
                    misses.Add(listed.Distinct().Count());
                }
            }
        }
        finally
        {
            await stop.CancelAsync();
            await rewrites.ContinueWith(_ => { }, TaskScheduler.Default);
        }

        Assert.Empty(misses);
    }
}
