using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;

namespace Bridge.Tests.Integration;

/// <summary>
/// A publish a connection sends after its own live join of the same room, without waiting for <c>room.joined</c>, is
/// delivered to it live after that <c>room.joined</c>: the publish waits for the join's seam before it goes to NATS
/// (docs/protocol.md §4, room.join). The count of pending seams and the wake-ups (seam taken, join closed, the bound)
/// are unit-tested in SeamWaitTests.
/// </summary>
public sealed class JoinThenPublishTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static Dictionary<string, object?> Batch(IEnumerable<string> rooms) => new()
    {
        ["type"] = MessageTypes.RoomJoin,
        ["id"] = "batch",
        ["payload"] = new Dictionary<string, object?> { ["rooms"] = rooms.Select(r => (object?)new Dictionary<string, object?> { ["room"] = r }).ToList() },
    };

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Each_publish_sent_right_after_a_batch_join_reaches_its_sender_once_after_its_rooms_room_joined(string protocol)
    {
        // A thousand rooms (the default MaxRoomsPerConnection): their seams come from a few multi_last batches, taken
        // while the publishes behind the join are already arriving. Without the wait most of them were stored before
        // their room's seam: neither replayed (a live join) nor delivered live.
        const int rooms = 1000;
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await client.FirstFrame;
        var names = Enumerable.Range(0, rooms).Select(_ => Names.Room("jp")).ToList();
        await client.SendAsync(Batch(names));
        for (var i = 0; i < rooms; i++)
        {
            await client.PublishAsync(names[i], i, id: $"p{i}");
        }

        var joined = new HashSet<string>(StringComparer.Ordinal);
        var acks = 0;
        var delivered = new Dictionary<string, int>(StringComparer.Ordinal);
        var beforeJoined = new List<string>();
        var errors = new List<string>();
        while (acks < rooms || joined.Count < rooms || delivered.Count < rooms)
        {
            Frame frame;
            try
            {
                // Generous under load; a message that was lost never comes, so a quiet spell ends the wait.
                frame = await client.NextAsync(TimeSpan.FromSeconds(15));
            }
            catch (TimeoutException)
            {
                break;
            }

            switch (frame.Type)
            {
                case MessageTypes.RoomJoined:
                    joined.Add(frame.Room!);
                    break;
                case MessageTypes.Ack:
                    acks++;
                    break;
                case MessageTypes.Error:
                    errors.Add($"{frame.Room} {frame.ErrorCode}");
                    break;
                case "chat.message":
                    if (!joined.Contains(frame.Room!))
                    {
                        beforeJoined.Add(frame.Room!);
                    }

                    delivered[frame.Room!] = delivered.GetValueOrDefault(frame.Room!) + 1;
                    break;
            }
        }

        Assert.Empty(errors);
        Assert.Equal(rooms, acks);
        Assert.Equal(rooms, joined.Count);
        Assert.Empty(beforeJoined);
        var missing = names.Count(n => !delivered.ContainsKey(n));
        Assert.True(missing == 0, $"{missing} of {rooms} own messages never arrived");
        Assert.All(delivered, d => Assert.Equal(1, d.Value));
    }

    [Fact]
    public async Task A_publish_right_after_a_join_that_is_refused_or_left_is_answered_as_without_the_join()
    {
        // These joins never count a pending seam (refused before they are added, or left on the receive loop before the
        // publish is read): this shows the answers, not the end of a wait; SeamWaitTests covers the count and wake-ups.
        // Two rooms per connection; the token lets the client publish to rooms it may not join.
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings(("Bridge:Connections:MaxRoomsPerConnection", "2"), ("Bridge:Connections:MaxPatternsPerConnection", "1")));
        var token = tokens.Create(subRooms: ["ok.>"], pubRooms: ["ok.>", "no.>"]);
        await using var client = await TestClient.ConnectAsync(new Uri(worker.WebSocketUrl + "?access_token=" + token));
        var (held, left, second, over, forbidden) = (Names.Room("ok"), Names.Room("ok"), Names.Room("ok"), Names.Room("ok"), Names.Room("no"));
        await client.JoinAndWaitAsync(held);

        // Each publish right behind its join, without waiting: the answers of both, in whichever order they come.
        async Task<List<string>> AnswersAsync(string room, string id) =>
            [.. (await client.CollectAsync(2, f => f.Room == room && (f.Type == MessageTypes.Error || (f.Type == MessageTypes.Ack && f.Id == id)), TimeSpan.FromSeconds(30)))
                .Select(f => f.Type == MessageTypes.Ack ? "ack" : f.ErrorCode!).Order(StringComparer.Ordinal)];

        // Refused by the token's grants.
        await client.JoinAsync(forbidden);
        await client.PublishAsync(forbidden, "f", id: "f");
        Assert.Equal(["ack", ErrorCodes.Forbidden], await AnswersAsync(forbidden, "f"));

        // Left before it was answered (or right after).
        await client.JoinAsync(left);
        await client.SendAsync(new() { ["type"] = MessageTypes.RoomLeave, ["room"] = left });
        await client.PublishAsync(left, "l", id: "l");
        await client.WaitForAsync(f => f.Type == MessageTypes.Ack && f.Id == "l", TimeSpan.FromSeconds(30));

        // Beyond the connection's rooms.
        await client.JoinAndWaitAsync(second);
        await client.JoinAsync(over);
        await client.PublishAsync(over, "o", id: "o");
        Assert.Equal(["ack", ErrorCodes.TooManyRooms], await AnswersAsync(over, "o"));
    }
}
