using System.Buffers;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using MessagePack;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;
using static Bridge.Tests.Integration.MessagePackEndToEndTests;

namespace Bridge.Tests.Integration;

/// <summary>
/// Issue 16 §4 over HTTP: <c>POST /api/rooms/{room}/messages</c> and the backend API's <c>publish</c> and
/// <c>broadcast</c> take a MessagePack map (<c>Content-Type: application/msgpack</c>) with the JSON body's keys; its
/// payload is stored as sent, like a <c>bridge.v1.msgpack</c> publish. Malformed MessagePack is refused with 400 and
/// nothing stored; a body neither JSON nor MessagePack with 415.
/// </summary>
public sealed class HttpMessagePackPublishTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private const string MsgPack = NatsSubjects.MessagePackContentType;

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    /// <summary>A MessagePack map of the given keys, each value written as the raw MessagePack bytes given.</summary>
    internal static byte[] Map(params (string Key, byte[] Value)[] entries)
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(entries.Length);
        foreach (var (key, value) in entries)
        {
            writer.Write(key);
            writer.WriteRaw(value);
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    internal static byte[] Pack<T>(T value) => MessagePackSerializer.Serialize(value);

    private static async Task<(HttpStatusCode Status, JsonNode Body)> PostAsync(Uri url, byte[] body, string? contentType)
    {
        using var content = new ByteArrayContent(body);
        // Set without parsing: a header HttpClient cannot parse (";;;===") is sent as written.
        content.Headers.ContentType = null;
        if (contentType is not null)
        {
            Assert.True(content.Headers.TryAddWithoutValidation("Content-Type", contentType));
        }

        using var response = await Http.PostAsync(url, content);
        return (response.StatusCode, JsonNode.Parse(await response.Content.ReadAsStringAsync())!);
    }

    private static Uri MessagesUrl(WorkerHost worker, string room) => new(worker.HttpUrl, $"/api/rooms/{room}/messages");

    /// <summary>How many messages the stream holds in <paramref name="room"/>'s subject, asked of the stream itself.</summary>
    private async Task<long> StoredCountAsync(string room)
    {
        await using var connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var subject = $"rooms.{room}";
        var stream = await new NatsJSContext(connection).GetStreamAsync("ROOMS", new StreamInfoRequest { SubjectsFilter = subject });
        return stream.Info.State.Subjects is { } subjects && subjects.TryGetValue(subject, out var count) ? count : 0;
    }

    [Theory]
    [InlineData("application/msgpack")]
    [InlineData("application/x-msgpack")]
    [InlineData("Application/VND.msgpack; charset=binary")]
    public async Task A_msgpack_http_publish_reaches_msgpack_members_byte_for_byte_and_json_and_sse_members_as_its_rendering(string contentType)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("hmp");
        await using var members = await MembersOfEachFormat.JoinAsync(worker, room);

        var payload = Payload();
        var body = PublishFrame(room, payload, id: "h-1");
        var (status, answer) = await PostAsync(MessagesUrl(worker, room), body, contentType);
        Assert.True(status == HttpStatusCode.OK, $"{status} {answer.ToJsonString()}");
        Assert.Equal("h-1", answer["id"]!.GetValue<string>());
        Assert.False(answer["duplicate"]!.GetValue<bool>());
        var seq = answer["seq"]!.GetValue<ulong>();

        // The MessagePack member gets the bytes as sent, the timestamp extension (type -1) included.
        Assert.Equal(seq, await members.AssertReceivedAsync("sensor.reading", payload, Rendering));
        await AssertStoredAsMessagePackAsync(nats.Server, seq, payload);

        // The id de-duplicates as in JSON: the retry answers the original seq and stores nothing.
        var (_, retry) = await PostAsync(MessagesUrl(worker, room), body, contentType);
        Assert.Equal(seq, retry["seq"]!.GetValue<ulong>());
        Assert.True(retry["duplicate"]!.GetValue<bool>());
        Assert.Equal(1, await StoredCountAsync(room));
    }

    [Theory]
    [InlineData("http")]
    [InlineData("nats")]
    public async Task A_backend_api_publish_and_broadcast_with_a_msgpack_body_reach_msgpack_members_as_sent_and_json_members_as_rendered(string adapter)
    {
        var key = ApiClient.NewKey();
        await using var worker = await WorkerHost.StartAsync(nats.Server, ApiClient.KeySettings("mp-backend", key));
        await using var api = ApiClient.For(adapter, worker.HttpUrl, key, nats.Server.Url);
        var (one, two) = (Names.Room("hmp"), Names.Room("hmp"));
        await using var pack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await pack.JoinAndWaitAsync(one);
        await pack.JoinAndWaitAsync(two);
        await json.JoinAndWaitAsync(one);

        var payload = Payload();
        var published = await api.SendAsync("publish", Map(
            ("room", Pack(one)), ("type", Pack("sensor.reading")), ("id", Pack("b-1")), ("from", Pack("thermo")), ("payload", payload)), MsgPack);
        Assert.True(published.Status == 200, published.ToString());
        var seq = published.Body["seq"]!.GetValue<ulong>();
        var received = await pack.WaitForAsync(f => f.Type == "sensor.reading" && f.Room == one);
        Assert.Equal((seq, "thermo"), (received.Seq, received.Json["from"]?.GetValue<string>()));
        Assert.Equal(payload, received.RawMsgPackPayload());
        AssertRendering((await json.WaitForAsync(f => f.Type == "sensor.reading")).Payload);
        await AssertStoredAsMessagePackAsync(nats.Server, seq, payload);

        var broadcast = await api.SendAsync("broadcast", Map(
            ("rooms", Pack(new[] { one, two })), ("type", Pack("sensor.alert")), ("payload", payload)), MsgPack);
        Assert.True(broadcast.Status == 200 && broadcast.Body["stored"]!.GetValue<int>() == 2, broadcast.ToString());
        var alerts = await pack.CollectAsync(2, f => f.Type == "sensor.alert");
        Assert.Equal(new[] { one, two }.Order(), alerts.Select(f => f.Room).Order());
        Assert.All(alerts, f => Assert.Equal(payload, f.RawMsgPackPayload()));
    }

    /// <summary>MessagePack bodies the edge refuses with <c>bad_frame</c>: each breaks one rule of docs/protocol.md §3.</summary>
    public static TheoryData<string, byte[]> MalformedBodies()
    {
        byte[] Publish(byte[] payload) => Map(("type", Pack("x.y")), ("payload", payload));
        return new()
        {
            { "not a map", Pack(new[] { "type", "x.y" }) },
            { "truncated map", Publish(Payload())[..^3] },
            { "data after the map", [.. Publish(Pack(1)), 0xC0] },
            { "NaN in the payload", Publish(Pack(new Dictionary<string, double> { ["v"] = double.NaN })) },
            { "a map key that is not str", Publish(Pack(new Dictionary<int, int> { [1] = 2 })) },
            { "a timestamp of 5 bytes", Publish([0xC7, 5, 0xFF, 1, 2, 3, 4, 5]) },
            { "a str that is not UTF-8", Publish([0xA2, 0xC3, 0x28]) },
            { "a reserved type code", Publish([0xC1]) },
            { "a payload nested 33 levels", Publish([.. Enumerable.Repeat((byte)0x91, 33), 0xC0]) },
        };
    }

    [Theory]
    [MemberData(nameof(MalformedBodies))]
    public async Task A_malformed_msgpack_body_gets_400_bad_frame_on_both_http_publishes_and_nothing_is_stored(string name, byte[] body)
    {
        var key = ApiClient.NewKey();
        await using var worker = await WorkerHost.StartAsync(nats.Server, ApiClient.KeySettings("mp-bad", key));
        await using var api = ApiClient.WithKey(worker.HttpUrl, key);
        var room = Names.Room("hmp");

        var (status, answer) = await PostAsync(MessagesUrl(worker, room), body, MsgPack);
        Assert.True((status, answer["code"]?.GetValue<string>()) == (HttpStatusCode.BadRequest, ErrorCodes.BadFrame), $"{name}: {status} {answer.ToJsonString()}");
        var withRoom = body[0] is >= 0x80 and <= 0x8F ? [(byte)(body[0] + 1), .. Pack("room"), .. Pack(room), .. body[1..]] : body;
        var refused = await api.SendAsync("publish", withRoom, MsgPack);
        Assert.True((refused.Status, refused.Code) == (400, ErrorCodes.BadFrame), $"{name}: {refused}");

        // The stream holds only what came after: the good publish.
        var (ok, _) = await PostAsync(MessagesUrl(worker, room), Map(("type", Pack("x.y")), ("payload", Pack(1))), MsgPack);
        Assert.Equal(HttpStatusCode.OK, ok);
        Assert.Equal(1, await StoredCountAsync(room));
    }

    [Fact]
    public async Task A_backend_api_integer_field_refuses_a_msgpack_whole_float_as_json_refuses_one_point_zero()
    {
        var key = ApiClient.NewKey();
        await using var worker = await WorkerHost.StartAsync(nats.Server, ApiClient.KeySettings("mp-float", key));
        await using var api = ApiClient.WithKey(worker.HttpUrl, key);
        var room = Names.Room("hmp");

        var asFloat = await api.SendAsync("history", Map(("room", Pack(room)), ("limit", Pack(5.0))), MsgPack);
        Assert.True((asFloat.Status, asFloat.Code) == (400, ErrorCodes.InvalidArgument), asFloat.ToString());
        var asJson = await api.SendAsync("history", ApiClient.Utf8($$"""{"room":"{{room}}","limit":5.0}"""), "application/json");
        Assert.True((asJson.Status, asJson.Code) == (400, ErrorCodes.InvalidArgument), asJson.ToString());
        var asInteger = await api.SendAsync("history", Map(("room", Pack(room)), ("limit", Pack(5))), MsgPack);
        Assert.True(asInteger.Status == 200, asInteger.ToString());
    }

    [Fact]
    public async Task A_body_with_an_envelope_key_twice_gets_400_bad_frame_in_both_formats_and_nothing_is_stored()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("hmp");

        var (status, answer) = await PostAsync(MessagesUrl(worker, room), """{"type":"chat.message","type":"evil.type","payload":1}"""u8.ToArray(), "application/json");
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame), (status, answer["code"]!.GetValue<string>()));
        Assert.Equal("duplicate name: envelope key 'type' appears twice", answer["message"]!.GetValue<string>());
        (status, answer) = await PostAsync(MessagesUrl(worker, room), Map(("type", Pack("x.y")), ("payload", Pack(1)), ("payload", Pack(2))), MsgPack);
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame), (status, answer["code"]!.GetValue<string>()));
        Assert.Equal("duplicate name: envelope key 'payload' appears twice", answer["message"]!.GetValue<string>());

        Assert.Equal(0, await StoredCountAsync(room));
    }

    [Theory]
    [InlineData("application/x-www-form-urlencoded")]
    [InlineData("application/octet-stream")]
    [InlineData("multipart/form-data; boundary=x")]
    [InlineData("text/html")]
    [InlineData(";;;===")]
    [InlineData("; charset=utf-8")]
    public async Task A_body_that_is_neither_json_nor_msgpack_gets_415_on_both_http_publishes_and_nothing_is_stored(string contentType)
    {
        var key = ApiClient.NewKey();
        await using var worker = await WorkerHost.StartAsync(nats.Server, ApiClient.KeySettings("mp-415", key));
        await using var api = ApiClient.WithKey(worker.HttpUrl, key);
        var room = Names.Room("hmp");

        // A body that would be stored under a JSON or MessagePack label.
        var (status, answer) = await PostAsync(MessagesUrl(worker, room), """{"type":"x.y","payload":1}"""u8.ToArray(), contentType);
        Assert.Equal((HttpStatusCode.UnsupportedMediaType, ErrorCodes.UnsupportedMediaType), (status, answer["code"]!.GetValue<string>()));
        Assert.Contains(NatsSubjects.MessagePackContentType, answer["message"]!.GetValue<string>(), StringComparison.Ordinal);
        var refused = await api.SendAsync("publish", ApiClient.Utf8($$"""{"room":"{{room}}","type":"x.y","payload":1}"""), contentType);
        Assert.Equal((415, ErrorCodes.UnsupportedMediaType), (refused.Status, refused.Code));

        Assert.Equal(0, await StoredCountAsync(room));
    }

    [Fact]
    public async Task A_json_body_is_still_accepted_without_a_content_type_as_text_plain_and_as_a_json_suffix_type()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("hmp");
        foreach (var contentType in new string?[] { null, "text/plain; charset=utf-8", "application/problem+json" })
        {
            var (status, answer) = await PostAsync(MessagesUrl(worker, room), """{"type":"x.y","payload":{"a":1}}"""u8.ToArray(), contentType);
            Assert.True(status == HttpStatusCode.OK, $"{contentType}: {status} {answer.ToJsonString()}");
        }

        Assert.Equal(3, await StoredCountAsync(room));
    }
}
