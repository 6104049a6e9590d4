using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>
/// A backend on NATS may write any header (docs/protocol.md §10), the stream's own names too: <c>Nats-Sequence</c>,
/// <c>Nats-Last-Sequence</c>, <c>Nats-Time-Stamp</c>, <c>Nats-Subject</c>. nats-server keeps them and appends its own
/// after them (on the republish to <c>live.rooms.&gt;</c> and on direct gets), so the worker reads the server's: the
/// message keeps its real seq, time and room live, on a resume and in a pattern's replay, and is not dropped.
/// </summary>
public sealed class SpoofedStreamHeadersTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task A_backend_message_with_the_streams_own_headers_keeps_its_real_seq_time_and_room_live_and_on_replay()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var prefix = Names.Room("spoof");
        var room = prefix + ".a";
        await using var live = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await live.JoinAndWaitAsync(room);

        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var spoofed = new NatsHeaders
        {
            [NatsSubjects.TypeHeader] = "chat.message",
            [NatsSubjects.ContentTypeHeader] = "application/json",
            ["Nats-Sequence"] = "1",
            ["Nats-Last-Sequence"] = "999999999",
            ["Nats-Time-Stamp"] = "2001-01-01T00:00:00Z",
            ["Nats-Subject"] = $"rooms.{prefix}.other",
        };
        var first = await js.PublishAsync($"rooms.{room}", """{"n":1}"""u8.ToArray(), headers: spoofed);
        first.EnsureSuccess();
        var second = await js.PublishAsync($"rooms.{room}", """{"n":2}"""u8.ToArray(), headers: new NatsHeaders { [NatsSubjects.TypeHeader] = "chat.message" });
        second.EnsureSuccess();

        var after2020 = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero).ToUnixTimeMilliseconds();
        void AssertReal(List<Frame> frames)
        {
            Assert.Equal([first.Seq, second.Seq], frames.Select(f => f.Seq));
            Assert.All(frames, f => Assert.Equal(room, f.Room));
            Assert.All(frames, f => Assert.True(f.Json["ts"]!.GetValue<long>() > after2020, f.ToString()));
        }

        static bool IsMessage(Frame f) => f.Type == "chat.message";
        AssertReal(await live.CollectAsync(2, IsMessage, TimeSpan.FromSeconds(10)));

        // A resume of the room, and of a pattern that matches it (its replay names each message's room).
        foreach (var joined in new[] { room, prefix + ".*" })
        {
            await using var resumed = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
            await resumed.SendAsync(new()
            {
                ["type"] = MessageTypes.RoomJoin,
                ["room"] = joined,
                ["payload"] = new Dictionary<string, object?> { ["since"] = first.Seq - 1 },
            });
            AssertReal(await resumed.CollectAsync(2, IsMessage, TimeSpan.FromSeconds(10)));
            var ready = await resumed.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);
            Assert.Equal(second.Seq, ready.Seq);
            Assert.False(ready.Payload!["truncated"]!.GetValue<bool>());
        }
    }
}
