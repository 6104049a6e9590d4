using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>
/// <c>bridge.ping</c> → <c>bridge.pong</c> on a real worker (docs/protocol.md §4): the answer carries the ping's id, is
/// queued behind the frames already queued for the connection, counts against the frame rate like any frame, and a
/// malformed ping gets the error frames any request gets.
/// </summary>
public sealed class PingTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    public static TheoryData<string> Protocols() => [Subprotocols.Json, Subprotocols.MessagePack];

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_ping_is_answered_with_a_pong_of_its_id_after_the_room_messages_queued_before_it(string protocol)
    {
        const int Queued = 300;
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("ping");
        // The pinging client does not read (a small receive buffer: the worker's queue holds most of what is sent to
        // it); an observer on the same worker reads every message, so once it has the last one the worker has queued
        // them all for the pinging client too. The pinging client joins from 0: whatever the join's timing, every
        // message comes to it (replayed or live).
        await using var pinger = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol, startReading: false, receiveBufferBytes: 4096);
        await using var observer = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await observer.JoinAndWaitAsync(room);
        await pinger.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room, ["payload"] = new Dictionary<string, object?> { ["since"] = 0 } });

        await using (var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url }))
        {
            var js = new NatsJSContext(backend);
            for (var i = 0; i < Queued; i++)
            {
                (await js.PublishAsync($"rooms.{room}", System.Text.Encoding.UTF8.GetBytes($"{{\"n\":{i},\"pad\":\"{new string('x', 1000)}\"}}"),
                    headers: new NatsHeaders { [NatsSubjects.TypeHeader] = "chat.message", [NatsSubjects.ContentTypeHeader] = NatsSubjects.JsonContentType })).EnsureSuccess();
            }
        }

        await observer.CollectAsync(Queued, f => f.Type == "chat.message");
        await pinger.SendAsync(new() { ["type"] = MessageTypes.Ping, ["id"] = "p-1" });
        await pinger.SendAsync(new() { ["type"] = MessageTypes.Ping, ["id"] = "p-2", ["room"] = room }); // a room is ignored
        pinger.StartReading();

        var frames = new List<Frame>();
        while (frames.LastOrDefault()?.Type != MessageTypes.Pong || frames.Last().Id != "p-2")
        {
            frames.Add(await pinger.NextAsync(TimeSpan.FromSeconds(20)));
        }

        var pongs = frames.Select((f, i) => (f, i)).Where(x => x.f.Type == MessageTypes.Pong).ToList();
        Assert.Equal(["p-1", "p-2"], pongs.Select(x => x.f.Id));
        Assert.Equal(Queued, frames.Count(f => f.Type == "chat.message"));
        Assert.Contains(frames, f => f.Type == MessageTypes.RoomJoined);
        // Both pongs after every message queued before them, and nothing else in the frame: no room, no seq, no payload.
        Assert.Equal(frames.Count - 2, pongs[0].i);
        Assert.All(pongs, x => Assert.Equal(["id", "type"], x.f.Json.Select(p => p.Key).Order(StringComparer.Ordinal)));
    }

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task A_malformed_ping_gets_the_error_any_request_gets_and_the_connection_keeps_answering(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        (Dictionary<string, object?> Frame, string Code, string? Ref)[] cases =
        [
            (new() { ["type"] = MessageTypes.Ping }, ErrorCodes.MissingField, null),
            (new() { ["type"] = MessageTypes.Ping, ["id"] = null }, ErrorCodes.MissingField, null),
            (new() { ["type"] = MessageTypes.Ping, ["id"] = 5 }, ErrorCodes.BadFrame, null),
            (new() { ["type"] = MessageTypes.Ping, ["id"] = "" }, ErrorCodes.InvalidId, null),
            (new() { ["type"] = MessageTypes.Ping, ["id"] = "has space" }, ErrorCodes.InvalidId, null),
            (new() { ["type"] = MessageTypes.Ping, ["id"] = new string('i', MessageId.MaxLength + 1) }, ErrorCodes.InvalidId, null),
            (new() { ["type"] = "BRIDGE.PING", ["room"] = "a.x", ["id"] = "upper" }, ErrorCodes.UnknownType, "upper"),
            (new() { ["type"] = MessageTypes.Pong, ["room"] = "a.x", ["id"] = "pong" }, ErrorCodes.UnknownType, "pong"),
        ];
        foreach (var (frame, code, reference) in cases)
        {
            await client.SendAsync(frame);
            var answer = await client.NextAsync(TimeSpan.FromSeconds(10));
            Assert.True(answer.ErrorCode == code, $"{string.Join(",", frame.Select(e => $"{e.Key}={e.Value}"))}: {answer}");
            Assert.Equal(reference, answer.Payload?["ref"]?.GetValue<string>());
        }

        await client.SendAsync(new() { ["type"] = MessageTypes.Ping, ["id"] = "after" });
        var pong = await client.NextAsync(TimeSpan.FromSeconds(10));
        Assert.Equal((MessageTypes.Pong, "after"), (pong.Type, pong.Id));
    }

    [Fact]
    public async Task Pings_count_against_the_frame_rate_and_one_over_it_is_refused_rate_limited_with_its_id()
    {
        // A bucket of 3 that refills one token a second: of 6 pings sent at once, at least 2 are refused.
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Limits:MessagesPerSecond", "1"), ("Bridge:Limits:MessageBurst", "3"));
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        for (var i = 0; i < 6; i++)
        {
            await client.SendAsync(new() { ["type"] = MessageTypes.Ping, ["id"] = $"p{i}" });
        }

        var answers = await client.CollectAsync(6, f => f.Type is MessageTypes.Pong or MessageTypes.Error, TimeSpan.FromSeconds(10));
        var refused = answers.Where(f => f.ErrorCode == ErrorCodes.RateLimited).Select(f => f.Payload!["ref"]!.GetValue<string>()).ToList();
        Assert.True(refused.Count >= 2, string.Join(" | ", answers));
        Assert.Equal(
            Enumerable.Range(0, 6).Select(i => $"p{i}").Order(StringComparer.Ordinal),
            answers.Where(f => f.Type == MessageTypes.Pong).Select(f => f.Id!).Concat(refused).Order(StringComparer.Ordinal));
    }
}
