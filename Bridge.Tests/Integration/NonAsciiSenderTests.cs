using Bridge.Contracts;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Integration;

/// <summary>
/// A sender is any Unicode text (a token's <c>sub</c>, the backend API's <c>from</c>: 1–256 characters), and it travels
/// in NATS headers (<c>Bridge-From</c>, and <c>Nats-Msg-Id</c> = <c>{room}/{from}/{id}</c>, docs/protocol.md §9–§10).
/// The worker writes and reads them as UTF-8: members see the sender as sent, and two senders that differ only outside
/// ASCII never share a de-duplication key.
/// </summary>
public sealed class NonAsciiSenderTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task Senders_outside_ascii_arrive_as_sent_and_do_not_collide_on_the_same_id()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("utf8");
        await using var member = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await member.JoinAndWaitAsync(room);
        await using var api = ApiClient.OverNats(nats.Server.Url);

        string[] senders = ["Zoë", "Zoé", "日本 ü"];
        var seqs = new List<ulong>();
        foreach (var from in senders)
        {
            var stored = await api.OkAsync("publish", new { room, type = "chat.message", from, id = "same-1", payload = from });
            Assert.False(stored["duplicate"]!.GetValue<bool>(), $"{from}: {stored.ToJsonString()}");
            seqs.Add(stored["seq"]!.GetValue<ulong>());
        }

        Assert.Equal(senders.Length, seqs.Distinct().Count());
        var received = await member.CollectAsync(senders.Length, f => f.Type == "chat.message", TimeSpan.FromSeconds(10));
        Assert.Equal(senders, received.Select(f => f.Json["from"]!.GetValue<string>()));
        Assert.Equal(seqs, received.Select(f => f.Seq));
    }
}
