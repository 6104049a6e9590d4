using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using NATS.Client.Core;

namespace Bridge.Tests.Backend;

/// <summary>
/// The NATS adapter is protected by NATS account permissions (docs/security.md): against a nats-server with users,
/// a backend allowed to publish on <c>bridge.api.&gt;</c> is answered; a user who may publish to rooms but not there
/// gets no answer and changes nothing. The worker's own user is denied one room's subject, which makes a broadcast
/// fail for that room only.
/// </summary>
public sealed class BackendApiNatsPermissionTests : IAsyncLifetime, IDisposable
{
    // The worker may do everything but publish into rooms.denied.>; the backend may only request the API; the outsider
    // may publish into rooms (like a device gateway) but not touch the API or the workers' subjects.
    private const string Config = """
        accounts {
          APP {
            jetstream: enabled
            users: [
              { user: worker, password: worker-pw, permissions: { publish: { deny: ["rooms.denied.>"] } } }
              { user: backend, password: backend-pw, permissions: { publish: ["bridge.api.>"], subscribe: ["_INBOX.>"] } }
              { user: outsider, password: outsider-pw, permissions: { publish: ["rooms.>"], subscribe: ["_INBOX.>"] } }
            ]
          }
        }
        """;

    private readonly Tokens _tokens = new();
    private NatsServerProcess _nats = null!;

    public async Task InitializeAsync() => _nats = await NatsServerProcess.StartAsync(config: Config);

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    public void Dispose() => _tokens.Dispose();

    private string UrlFor(string user) => _nats.Url.Replace("nats://", $"nats://{user}:{user}-pw@", StringComparison.Ordinal);

    private Task<WorkerHost> StartWorkerAsync() => WorkerHost.StartAsync(
        _nats, _tokens.WorkerSettings(("Bridge:Nats:Url", UrlFor("worker")), ("Bridge:Nats:PublishTimeout", "00:00:01")));

    private ApiClient As(string user) => ApiClient.OverNats(
        _nats.Url,
        NatsOpts.Default with { AuthOpts = NatsAuthOpts.Default with { Username = user, Password = $"{user}-pw" } },
        TimeSpan.FromSeconds(user == "outsider" ? 2 : 20));

    [Fact]
    public async Task A_backend_allowed_on_bridge_api_is_answered_and_a_broadcast_reports_the_one_room_it_could_not_store()
    {
        await using var worker = await StartWorkerAsync();
        await using var backend = As("backend");
        var ok1 = Names.Room("ok");
        var ok2 = Names.Room("ok");
        var denied = Names.Room("denied");

        var answer = await backend.OkAsync("broadcast", new { rooms = new[] { ok1, denied, ok2 }, type = "chat.message", id = "b-1", payload = 1 });
        Assert.Equal((2, 1), (answer["stored"]!.GetValue<int>(), answer["failed"]!.GetValue<int>()));
        var results = answer["results"]!.AsArray();
        Assert.True(results[0]!["seq"]!.GetValue<ulong>() > 0);
        Assert.Equal(ErrorCodes.PublishFailed, results[1]!["error"]!["code"]!.GetValue<string>());
        Assert.Null(results[1]!["seq"]);
        Assert.True(results[2]!["seq"]!.GetValue<ulong>() > 0);
        Assert.Single((await backend.OkAsync("history", new { room = ok2 }))["messages"]!.AsArray());
    }

    [Fact]
    public async Task A_nats_user_without_rights_on_bridge_api_gets_no_answer_and_bans_no_one()
    {
        await using var worker = await StartWorkerAsync();
        await using var outsider = As("outsider");
        var victim = "victim-" + Guid.NewGuid().ToString("N")[..6];
        var token = _tokens.Create(victim, subRooms: [">"]);

        await using var direct = new NatsConnection(NatsOpts.Default with
        {
            Url = _nats.Url,
            AuthOpts = NatsAuthOpts.Default with { Username = "outsider", Password = "outsider-pw" },
        });
        // The outsider is a working NATS user: what it may do (publish into a room) is stored.
        var room = Names.Room("dev");
        await direct.PublishAsync($"rooms.{room}", "{\"t\":1}"u8.ToArray());
        await using var backend = As("backend");
        await Eventually.TrueAsync(async () => (await backend.OkAsync("history", new { room }))["messages"]!.AsArray().Count == 1);

        await Assert.ThrowsAnyAsync<NatsException>(() => outsider.CallAsync("ban", new { user = victim }));
        await Assert.ThrowsAnyAsync<NatsException>(async () => await direct.RequestAsync<byte[], byte[]>(
            "bridge.worker.disconnect", System.Text.Encoding.UTF8.GetBytes($$"""{"user":"{{victim}}"}"""),
            replyOpts: new NatsSubOpts { Timeout = TimeSpan.FromSeconds(2) }));

        Assert.Equal(101, await BackendApiTests.UpgradeStatusAsync(worker, token));
    }
}
