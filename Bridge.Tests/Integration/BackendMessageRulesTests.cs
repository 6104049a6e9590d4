using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>
/// What a backend writes straight into NATS is held to the rules a client's message is held to where it can be read
/// cheaply (docs/protocol.md §10): <c>Bridge-From</c> to the one rule for a sender (a token's <c>sub</c>, 1–256
/// characters without control characters), dropped otherwise as a bad <c>Bridge-Id</c> is; a MessagePack body's
/// timestamps to the client rule (4, 8 or 12 bytes, nanoseconds below 10⁹), binary for every member otherwise.
/// Each holds live and on a resume alike.
/// </summary>
public sealed class BackendMessageRulesTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task A_bridge_from_that_breaks_the_sender_rule_is_dropped_and_its_message_still_delivered_live_and_on_resume()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("from");
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await using var pack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await json.JoinAndWaitAsync(room);
        await pack.JoinAndWaitAsync(room);

        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url, HeaderEncoding = System.Text.Encoding.UTF8 });
        var js = new NatsJSContext(backend);
        var longest = new string('x', 256);
        (string From, string? Expected)[] cases =
        [
            ("backend:thermo", "backend:thermo"),
            (longest, longest),
            (new string('x', 257), null),
            (new string('é', 10_000), null),
            ("a\u0001b", null),
            ("tab\there", null),
            ("Zoë", "Zoë"),
        ];
        ulong first = 0;
        foreach (var (from, _) in cases)
        {
            var ack = await js.PublishAsync($"rooms.{room}", """{"n":1}"""u8.ToArray(), headers: new NatsHeaders
            {
                [NatsSubjects.TypeHeader] = "chat.message",
                [NatsSubjects.FromHeader] = from,
            });
            ack.EnsureSuccess();
            first = first == 0 ? ack.Seq : first;
        }

        void AssertSenders(List<Frame> frames) =>
            Assert.Equal(
                cases.Select(c => c.Expected),
                frames.Select(f => f.Json["from"]?.GetValue<string>()));

        static bool IsMessage(Frame f) => f.Type == "chat.message";
        var timeout = TimeSpan.FromSeconds(10);
        AssertSenders(await json.CollectAsync(cases.Length, IsMessage, timeout));
        AssertSenders(await pack.CollectAsync(cases.Length, IsMessage, timeout));

        await using var resumed = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await resumed.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["room"] = room,
            ["payload"] = new Dictionary<string, object?> { ["since"] = first - 1 },
        });
        AssertSenders(await resumed.CollectAsync(cases.Length, IsMessage, timeout));
    }

    [Theory]
    [InlineData("d5ff0001")] // fixext 2, type -1: a timestamp of 2 bytes
    [InlineData("c70cff3b9aca000000000000000001")] // ext 8 with 12 bytes, type -1: nanoseconds 10^9
    [InlineData("81a174d5ff0001")] // {"t": the 2-byte timestamp}: below the top too
    public async Task A_backend_msgpack_body_with_a_malformed_timestamp_is_binary_for_every_member(string hex)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("badts");
        await using var members = await MembersOfEachFormat.JoinAsync(worker, room);

        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var body = Convert.FromHexString(hex);
        (await js.PublishAsync($"rooms.{room}", body, headers: new NatsHeaders
        {
            [NatsSubjects.TypeHeader] = "a.ts",
            [NatsSubjects.ContentTypeHeader] = NatsSubjects.MessagePackContentType,
        })).EnsureSuccess();

        // MessagePack: a bin of the body's bytes (not the malformed value a decoder would throw on).
        var packed = await members.Pack.WaitForAsync(f => f.Type == "a.ts");
        Assert.Equal(body, Assert.IsType<byte[]>(packed.MsgPack!["payload"]));
        // JSON and SSE: base64 of the body's bytes (not a {"$ext":-1} object that looks like a value).
        var json = await members.Json.WaitForAsync(f => f.Type == "a.ts");
        Assert.Equal("base64", json.Json["enc"]?.GetValue<string>());
        Assert.Equal(body, Convert.FromBase64String(json.Payload!.GetValue<string>()));
        var sse = (await members.Sse.WaitForAsync(e => e.Event == "a.ts")).Json;
        Assert.Equal("base64", sse["enc"]?.GetValue<string>());
        Assert.Equal(body, Convert.FromBase64String(sse["payload"]!.GetValue<string>()));
    }
}
