using System.Buffers;
using System.Text;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using MessagePack;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>
/// Issue 16 §4: a MessagePack payload is stored as MessagePack (<c>Content-Type: application/msgpack</c>), reaches
/// MessagePack members byte for byte (extension types included) live and on resume from another worker, and JSON
/// members, SSE and history get its JSON rendering.
/// </summary>
public sealed class MessagePackEndToEndTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    // 2026-01-01T00:00:01.123456789Z as the 96-bit timestamp (nanoseconds, then int64 seconds).
    private static readonly byte[] Timestamp96 = [0x07, 0x5B, 0xCD, 0x15, 0, 0, 0, 0, 0x69, 0x55, 0xB9, 0x01];

    /// <summary>
    /// {"t": timestamp, "v": 21.5, "n": -7, "s": "café", "e": ext 5 [1,2,3], "b": bin [0, 255]}, written by hand so
    /// the exact bytes are known.
    /// </summary>
    internal static byte[] Payload()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(6);
        writer.Write("t");
        writer.WriteExtensionFormatHeader(new ExtensionHeader(-1, 12));
        writer.WriteRaw(Timestamp96);
        writer.Write("v");
        writer.Write(21.5);
        writer.Write("n");
        writer.Write(-7);
        writer.Write("s");
        writer.Write("caf\u00e9");
        writer.Write("e");
        writer.WriteExtensionFormatHeader(new ExtensionHeader(5, 3));
        writer.WriteRaw(new byte[] { 1, 2, 3 });
        writer.Write("b");
        writer.Write(new byte[] { 0, 255 });
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    // The documented JSON rendering (docs/protocol.md §3) of Payload().
    internal static readonly JsonNode Rendering = JsonNode.Parse(
        """{"t":"2026-01-01T00:00:01.123456789Z","v":21.5,"n":-7,"s":"café","e":{"$ext":5,"$data":"AQID"},"b":"AP8="}""")!;

    internal static byte[] PublishFrame(string room, byte[] payload, string? id = null)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(id is null ? 3 : 4);
        writer.Write("type");
        writer.Write("sensor.reading");
        writer.Write("room");
        writer.Write(room);
        if (id is not null)
        {
            writer.Write("id");
            writer.Write(id);
        }

        writer.Write("payload");
        writer.WriteRaw(payload);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>A stored message as a backend reads it from the stream.</summary>
    private Task<NATS.Client.JetStream.Models.StreamMsgGetResponse> StoredAsync(ulong seq) => StoredAsync(nats.Server, seq);

    /// <summary>A stored message as a backend reads it from the stream.</summary>
    internal static async Task<NATS.Client.JetStream.Models.StreamMsgGetResponse> StoredAsync(NatsServerProcess server, ulong seq)
    {
        await using var backend = new NatsConnection(new NatsOpts { Url = server.Url });
        var stream = await new NatsJSContext(backend).GetStreamAsync("ROOMS");
        return await stream.GetAsync(new NATS.Client.JetStream.Models.StreamMsgGetRequest { Seq = seq });
    }

    internal static void AssertRendering(JsonNode? payload) =>
        Assert.True(JsonNode.DeepEquals(Rendering, payload), $"{payload?.ToJsonString()} is not {Rendering.ToJsonString()}");

    [Fact]
    public async Task A_msgpack_publish_is_stored_as_msgpack_reaches_msgpack_members_byte_for_byte_and_json_and_sse_members_as_its_rendering()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("mp");
        await using var publisher = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await using var members = await MembersOfEachFormat.JoinAsync(worker, room);

        var payload = Payload();
        await publisher.SendRawAsync(PublishFrame(room, payload, id: "p-1"));
        var ack = await publisher.WaitForAsync(f => f.Type == MessageTypes.Ack);

        Assert.Equal(ack.Seq, await members.AssertReceivedAsync("sensor.reading", payload, Rendering));
        await AssertStoredAsMessagePackAsync(nats.Server, ack.Seq, payload);
    }

    /// <summary>What backends reading the stream see: the bytes as sent, named by their header.</summary>
    internal static async Task AssertStoredAsMessagePackAsync(NatsServerProcess server, ulong seq, byte[] payload)
    {
        var stored = await StoredAsync(server, seq);
        Assert.Equal(payload, stored.Message.Data.ToArray());
        Assert.Contains($"{NatsSubjects.ContentTypeHeader}: {NatsSubjects.MessagePackContentType}",
            Encoding.UTF8.GetString(Convert.FromBase64String(stored.Message.Hdrs!)), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_msgpack_member_resuming_on_another_worker_gets_the_stored_bytes_unchanged_and_history_gives_the_rendering()
    {
        var key = ApiClient.NewKey();
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server, ApiClient.KeySettings("mp-test", key));
        var room = Names.Room("mp");
        ulong since;
        await using (var first = await TestClient.ConnectAsync(workerA.WebSocketUrl, Subprotocols.MessagePack))
        {
            await first.JoinAsync(room);
            since = (await first.WaitForAsync(f => f.Type == MessageTypes.RoomJoined)).Seq;
        }

        // Published while the member is away, from a MessagePack client on worker A.
        var payload = Payload();
        await using (var publisher = await TestClient.ConnectAsync(workerA.WebSocketUrl, Subprotocols.MessagePack))
        {
            await publisher.SendRawAsync(PublishFrame(room, payload));
            await publisher.WaitForAsync(f => f.Type == MessageTypes.Ack);
        }

        await using var again = await TestClient.ConnectAsync(workerB.WebSocketUrl, Subprotocols.MessagePack);
        await again.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["room"] = room,
            ["payload"] = new Dictionary<string, object?> { ["since"] = since },
        });
        var replayed = await again.WaitForAsync(f => f.Type == "sensor.reading");
        Assert.Equal(payload, replayed.RawMsgPackPayload());
        Assert.Equal(1, (await again.WaitForAsync(f => f.Type == MessageTypes.RoomJoined)).Payload!["replayed"]!.GetValue<int>());

        // A JSON member resuming there, and the backend API's history, get the rendering.
        await using var jsonAgain = await TestClient.ConnectAsync(workerB.WebSocketUrl, Subprotocols.Json);
        await jsonAgain.SendAsync(new()
        {
            ["type"] = MessageTypes.RoomJoin,
            ["room"] = room,
            ["payload"] = new Dictionary<string, object?> { ["since"] = since },
        });
        AssertRendering((await jsonAgain.WaitForAsync(f => f.Type == "sensor.reading")).Payload);
        var history = await ApiClient.WithKey(workerB.HttpUrl, key).OkAsync("history", new { room });
        AssertRendering(Assert.Single(history["messages"]!.AsArray())!["payload"]);
    }

    [Fact]
    public async Task A_backend_publishing_msgpack_with_the_header_reaches_msgpack_members_as_sent_and_json_members_as_rendered_or_as_binary_when_it_has_no_json_form()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("mp");
        await using var pack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await pack.JoinAndWaitAsync(room);
        await json.JoinAndWaitAsync(room);

        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var payload = Payload();
        byte[] noJsonForm = [0x81, 0x01, 0xCB, 0x7F, 0xF8, 0, 0, 0, 0, 0, 0]; // {1: NaN}: a non-str key and NaN
        foreach (var (type, body) in new[] { ("a.one", payload), ("a.two", noJsonForm) })
        {
            (await js.PublishAsync($"rooms.{room}", body, headers: new NatsHeaders
            {
                [NatsSubjects.TypeHeader] = type,
                [NatsSubjects.ContentTypeHeader] = NatsSubjects.MessagePackContentType,
            })).EnsureSuccess();
        }

        Assert.Equal(payload, (await pack.WaitForAsync(f => f.Type == "a.one")).RawMsgPackPayload());
        Assert.Equal(noJsonForm, (await pack.WaitForAsync(f => f.Type == "a.two")).RawMsgPackPayload());
        AssertRendering((await json.WaitForAsync(f => f.Type == "a.one")).Payload);
        var fallback = await json.WaitForAsync(f => f.Type == "a.two");
        Assert.Equal("base64", fallback.Json["enc"]!.GetValue<string>());
        Assert.Equal(noJsonForm, Convert.FromBase64String(fallback.Payload!.GetValue<string>()));
    }

    [Fact]
    public async Task With_StoreMessagePackAsJson_a_msgpack_publish_is_stored_as_its_json_rendering()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Nats:StoreMessagePackAsJson", "true"));
        var room = Names.Room("mp");
        await using var pack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await pack.JoinAndWaitAsync(room);
        await pack.SendRawAsync(PublishFrame(room, Payload(), id: "j-1"));
        // The ack and the room's copy travel different paths; either may come first.
        var frames = await pack.CollectAsync(2, f => f.Type is MessageTypes.Ack or "sensor.reading");
        var ack = Assert.Single(frames, f => f.Type == MessageTypes.Ack);

        var stored = await StoredAsync(ack.Seq);
        AssertRendering(JsonNode.Parse(stored.Message.Data.ToArray()));
        // The member gets the MessagePack form of that JSON: the timestamp is now a string.
        var received = Assert.Single(frames, f => f.Type == "sensor.reading");
        Assert.Equal("2026-01-01T00:00:01.123456789Z", received.Payload!["t"]!.GetValue<string>());
    }
}
