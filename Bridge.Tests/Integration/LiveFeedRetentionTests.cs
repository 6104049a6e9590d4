using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Nats;
using Bridge.Worker.Rooms;
using NATS.Client.Core;

namespace Bridge.Tests.Integration;

/// <summary>
/// Members live in a room whose live feed misses messages (here: the worker's NATS connection is cut while a backend
/// publishes more than retention keeps) are told, as a resume would be: the room's catch-up after the reconnect finds
/// its position dropped, and every live member gets <c>room.joined</c> with <c>truncated</c> right after the first
/// message kept after the hole. Its own nats-server.
/// </summary>
public sealed class LiveFeedRetentionTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(60);
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromMinutes(3) };

    [Fact]
    public async Task Live_members_on_every_transport_get_truncated_right_after_the_first_kept_message_when_retention_dropped_part_of_what_the_feed_missed()
    {
        await using var link = new NatsLink(nats.Server.Port);
        await using var worker = await WorkerHost.StartAsync(nats.Server,
            ("Bridge:Nats:Url", link.Url), ("Bridge:Nats:MaxMessagesPerRoom", "10"), ("Bridge:Connections:PollTimeout", "00:02:00"));
        using var meters = new WorkerMeters(worker);
        var site = Names.Room("site");
        var room = $"{site}.a";
        var pattern = $"{site}.>";
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await using var msgpack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await using var byPattern = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await json.JoinAndWaitAsync(room);
        await msgpack.JoinAndWaitAsync(room);
        await byPattern.JoinAndWaitAsync(pattern);
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, room);
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined, Long);

        // A message the room dispatched live, so its position is a stored message; then a long-poll from there.
        var first = (await Bursts.PublishAsync(nats.Server, room, 1, bodyBytes: 16))[0];
        await json.WaitForAsync(f => f.Type == Bursts.Type && f.Seq == first, Long);
        await msgpack.WaitForAsync(f => f.Type == Bursts.Type && f.Seq == first, Long);
        await byPattern.WaitForAsync(f => f.Type == Bursts.Type && f.Seq == first, Long);
        await sse.WaitForAsync(e => e.Event == Bursts.Type, Long);
        var poll = Http.GetFromJsonAsync<JsonObject>(new Uri(worker.HttpUrl, $"/poll?rooms={room}&cursor={first}"));
        // Four members of the room, and the poll's resume answered (room.joined: it is live then).
        await Eventually.TrueAsync(
            () => worker.Get<RoomRegistry>().Snapshot().SingleOrDefault(r => r.Name == room)?.MemberCount == 4 && meters.Total("bridge.resumes") == 1, Long);

        // The feed misses 30 messages; the stream keeps the last 10 of the room, and the position is no longer stored.
        link.Cut();
        var connection = worker.Get<NatsContext>().Connection;
        await Eventually.TrueAsync(() => connection.ConnectionState != NatsConnectionState.Open, Long);
        var seqs = await Bursts.PublishAsync(nats.Server, room, 30, bodyBytes: 16);
        link.Restore();

        // What is kept, each once and in order, with the notice at the first kept message's seq, right after it.
        Truncations.Seen[] expected =
        [
            new(Bursts.Type, seqs[20], false),
            new(MessageTypes.RoomJoined, seqs[20], true),
            .. seqs.Skip(21).Select(s => new Truncations.Seen(Bursts.Type, s, false)),
        ];
        Assert.Equal(expected, await Truncations.ReadUpToAsync(json, room, seqs[^1], Long));
        Assert.Equal(expected, await Truncations.ReadUpToAsync(msgpack, room, seqs[^1], Long));
        Assert.Equal(expected, await Truncations.ReadUpToAsync(sse, seqs[^1], Long));
        // The pattern's feed (its position: the same message) is caught up the same way; its notice names the pattern.
        Assert.Equal(expected, await ReadUpToAsync(byPattern, room, pattern, seqs[^1]));

        // The poll answers with what came first after the hole, and lists the room as truncated.
        var answer = (await poll)!;
        Assert.Equal(seqs[20], answer["messages"]!.AsArray()[0]!["seq"]!.GetValue<ulong>());
        Assert.Equal([room], answer["truncated"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.Equal(2, meters.Total("bridge.gap.truncated")); // the room's and the pattern's
    }

    /// <summary>A pattern member's messages of <paramref name="room"/> and its notices (of the pattern), up to <paramref name="lastSeq"/>.</summary>
    private static async Task<List<Truncations.Seen>> ReadUpToAsync(TestClient client, string room, string pattern, ulong lastSeq)
    {
        var seen = new List<Truncations.Seen>();
        while (seen.LastOrDefault() is not { Type: Bursts.Type } last || last.Seq != lastSeq)
        {
            var frame = await client.WaitForAsync(f => f.Room == room || f.Room == pattern, Long);
            seen.Add(new(frame.Type ?? "", frame.Seq, frame.Type == MessageTypes.RoomJoined && frame.Payload!["truncated"]!.GetValue<bool>()));
        }

        return seen;
    }
}
