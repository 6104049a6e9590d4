using System.Buffers;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using MessagePack;

namespace Bridge.Tests.Integration;

/// <summary>
/// Edges a new user meets by mistake (review, session 9): a compressed HTTP body, a cursor naming a room twice,
/// <c>rooms=</c> given twice, a reserved type in another case, and the wording of refusals of malformed bodies and
/// frames. Each is refused with a documented code and our own words (docs/protocol.md), and nothing is stored.
/// </summary>
public sealed class RefusalEdgeTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly string _key = ApiClient.NewKey();

    private Task<WorkerHost> StartAsync() => WorkerHost.StartAsync(nats.Server, ApiClient.KeySettings("tests", _key));

    private static async Task<(HttpStatusCode Status, string? Code, string? Message)> PostAsync(
        Uri url, byte[] body, string contentType = "application/json", string? contentEncoding = null, string? apiKey = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, url) { Content = new ByteArrayContent(body) };
        request.Content.Headers.ContentType = null;
        Assert.True(request.Content.Headers.TryAddWithoutValidation("Content-Type", contentType));
        if (contentEncoding is not null)
        {
            Assert.True(request.Content.Headers.TryAddWithoutValidation("Content-Encoding", contentEncoding));
        }

        if (apiKey is not null)
        {
            request.Headers.Add("X-Api-Key", apiKey);
        }

        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        var json = text.Length > 0 ? JsonNode.Parse(text) : null;
        return (response.StatusCode, json?["code"]?.GetValue<string>(), json?["message"]?.GetValue<string>());
    }

    private static Uri MessagesUrl(WorkerHost worker, string room) => new(worker.HttpUrl, $"/api/rooms/{room}/messages");

    private static byte[] Gzip(string text)
    {
        using var output = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(output, System.IO.Compression.CompressionLevel.Fastest))
        {
            gzip.Write(Encoding.UTF8.GetBytes(text));
        }

        return output.ToArray();
    }

    [Fact]
    public async Task A_body_with_a_content_encoding_other_than_identity_gets_415_unsupported_encoding_and_nothing_is_stored()
    {
        await using var worker = await StartAsync();
        var room = Names.Room("enc");
        await using var stored = await SubjectObserver.StartAsync(nats.Server.Url, $"rooms.{room}");
        var plain = """{"type":"chat.message","payload":1}""";

        // HTTP publish: a gzipped body, a plain body that claims gzip, other codings and a list: all refused alike.
        foreach (var (body, encoding) in new[]
        {
            (Gzip(plain), "gzip"), (Encoding.UTF8.GetBytes(plain), "gzip"), (Encoding.UTF8.GetBytes(plain), "BR"),
            (Encoding.UTF8.GetBytes(plain), "deflate"), (Encoding.UTF8.GetBytes(plain), "identity, gzip"),
        })
        {
            var refused = await PostAsync(MessagesUrl(worker, room), body, contentEncoding: encoding);
            Assert.Equal((HttpStatusCode.UnsupportedMediaType, ErrorCodes.UnsupportedEncoding), (refused.Status, refused.Code));
            Assert.Contains($"Content-Encoding '{encoding}' is not supported", refused.Message, StringComparison.Ordinal);
        }

        // The backend API reads its bodies the same way.
        var backend = await PostAsync(new Uri(worker.HttpUrl, "/api/backend/publish"),
            Gzip($$"""{"room":"{{room}}","type":"chat.message","payload":1}"""), contentEncoding: "gzip", apiKey: _key);
        Assert.Equal((HttpStatusCode.UnsupportedMediaType, ErrorCodes.UnsupportedEncoding), (backend.Status, backend.Code));
        Assert.Empty(await stored.DrainAsync());

        // identity (any case) is the body as sent: accepted.
        var identity = await PostAsync(MessagesUrl(worker, room), Encoding.UTF8.GetBytes(plain), contentEncoding: "Identity");
        Assert.Equal(HttpStatusCode.OK, identity.Status);
        Assert.Single(await stored.DrainAsync());
    }

    [Fact]
    public async Task A_cursor_naming_a_room_twice_is_refused_with_invalid_argument_naming_the_room()
    {
        await using var worker = await StartAsync();
        var (a, b) = (Names.Room("cur"), Names.Room("cur"));

        // SSE: the Last-Event-ID header and the lastEventId parameter.
        using (var request = new HttpRequestMessage(HttpMethod.Get, new Uri(worker.HttpUrl, $"/sse?rooms={a},{b}")))
        {
            request.Headers.Add("Last-Event-ID", $"{a}=1,{b}=4,{a}=2");
            using var response = await Http.SendAsync(request);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.InvalidArgument, $"Last-Event-ID names room '{a}' twice: one position per room"),
                (response.StatusCode, body["code"]!.GetValue<string>(), body["message"]!.GetValue<string>()));
        }

        foreach (var path in new[] { $"/sse?rooms={a},{b}&lastEventId={a}%3D1,{a}%3D1", $"/poll?rooms={a},{b}&cursor={b}%3D3,{b}%3D2" })
        {
            using var response = await Http.GetAsync(new Uri(worker.HttpUrl, path));
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.InvalidArgument), (response.StatusCode, body["code"]!.GetValue<string>()));
            Assert.Contains("' twice: one position per room", body["message"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        // rooms= given twice is one list (documented): both rooms are joined and resumed from the cursor.
        await Store.PublishAsync(nats.Server, [a, b]);
        var poll = JsonNode.Parse(await Http.GetStringAsync(new Uri(worker.HttpUrl, $"/poll?rooms={a}&rooms={b}&cursor={a}%3D0,{b}%3D0")))!;
        Assert.Equal(new HashSet<string> { a, b }, poll["messages"]!.AsArray().Select(m => m!["room"]!.GetValue<string>()).ToHashSet());
    }

    [Fact]
    public async Task A_reserved_type_in_another_case_is_refused_with_unknown_type_on_every_way_in_and_nothing_is_stored()
    {
        await using var worker = await StartAsync();
        var room = Names.Room("case");
        await using var stored = await SubjectObserver.StartAsync(nats.Server.Url, $"rooms.{room}");

        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        foreach (var type in new[] { "ROOM.JOIN", "Room.joined", "Welcome", "ACK", "Presence.Update", "SERVER.x" })
        {
            var id = "c-" + Guid.NewGuid().ToString("N")[..6];
            await client.SendAsync(new() { ["type"] = type, ["room"] = room, ["id"] = id, ["payload"] = 1 });
            var answer = await client.WaitForAsync(f => f.Type is MessageTypes.Ack or MessageTypes.Error);
            Assert.Equal(id, answer.Payload?["ref"]?.GetValue<string>());
            Assert.True(answer.ErrorCode == ErrorCodes.UnknownType, $"{type}: {answer}");
            Assert.Contains("matched ignoring case", answer.Payload!["message"]!.GetValue<string>(), StringComparison.Ordinal);
        }

        var http = await PostAsync(MessagesUrl(worker, room), """{"type":"Room.Join","payload":1}"""u8.ToArray());
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.UnknownType), (http.Status, http.Code));
        var backend = await PostAsync(new Uri(worker.HttpUrl, "/api/backend/publish"),
            Encoding.UTF8.GetBytes($$"""{"room":"{{room}}","type":"AUTH.refresh","payload":1}"""), apiKey: _key);
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.UnknownType), (backend.Status, backend.Code));
        Assert.Empty(await stored.DrainAsync());

        // An application type that merely has capitals is still one.
        await client.PublishAsync(room, 1, type: "Chat.Message", id: "ok-1");
        var ack = await client.WaitForAsync(f => f.Type is MessageTypes.Ack or MessageTypes.Error);
        Assert.True((ack.Type, ack.Id) == (MessageTypes.Ack, "ok-1"), ack.ToString());
        Assert.Single(await stored.DrainAsync());
    }

    [Fact]
    public async Task Malformed_bodies_and_frames_are_refused_in_our_words_and_nothing_is_stored()
    {
        await using var worker = await StartAsync();
        var room = Names.Room("words");
        await using var stored = await SubjectObserver.StartAsync(nats.Server.Url, $"rooms.{room}");

        // HTTP publish: an empty body, and a trailing comma.
        var empty = await PostAsync(MessagesUrl(worker, room), []);
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame, Bridge.Worker.Transports.Http.PublishEndpoint.EmptyBody), (empty.Status, empty.Code, empty.Message));
        var comma = await PostAsync(MessagesUrl(worker, room), """{"type":"chat.message","payload":{"x":1,}}"""u8.ToArray());
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame), (comma.Status, comma.Code));
        Assert.StartsWith("malformed JSON: a comma before '}' (trailing commas are not JSON) (line 1, byte ", comma.Message, StringComparison.Ordinal);

        // WebSocket JSON: the same frame, the same words.
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await json.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        await json.SendRawAsync("""{"type":"chat.message","room":"x","id":"j1","payload":[1,]}"""u8.ToArray());
        var jsonError = await json.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal(ErrorCodes.BadFrame, jsonError.ErrorCode);
        Assert.StartsWith("malformed JSON: a comma before ']' (trailing commas are not JSON) (line 1, byte ", jsonError.Payload!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // WebSocket MessagePack: a str32 claiming 4 GiB in the payload, and a str that is not UTF-8 (no JSON escapes in its words).
        await using var msgpack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await msgpack.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        await msgpack.SendRawAsync(Map(("type", Pack("chat.message")), ("room", Pack(room)), ("id", Pack("m1")), ("payload", [0xDB, 0xFF, 0xFF, 0xFF, 0xFF, 0x61])));
        var huge = await msgpack.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal((ErrorCodes.BadFrame, "m1", "malformed MessagePack payload: the data ends inside a value, or a length claims more bytes than there are"),
            (huge.ErrorCode, huge.Payload!["ref"]?.GetValue<string>(), huge.Payload!["message"]!.GetValue<string>()));
        await msgpack.SendRawAsync(Map(("type", Pack("chat.message")), ("room", Pack(room)), ("id", Pack("m2")), ("payload", [0xA2, 0xC3, 0x28])));
        var text = await msgpack.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal((ErrorCodes.BadFrame, UnicodeText.InvalidMessagePackMessage), (text.ErrorCode, text.Payload!["message"]!.GetValue<string>()));

        // Backend API: a name twice reads the same in JSON and in MessagePack.
        var banUrl = new Uri(worker.HttpUrl, "/api/backend/ban");
        var jsonTwice = await PostAsync(banUrl, """{"user":"a","user":"b","ttl_seconds":5}"""u8.ToArray(), apiKey: _key);
        var msgpackTwice = await PostAsync(banUrl, Map(("user", Pack("a")), ("user", Pack("b")), ("ttl_seconds", Pack(5))), NatsSubjects.MessagePackContentType, apiKey: _key);
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame, "duplicate name: 'user' appears twice in one object"), (msgpackTwice.Status, msgpackTwice.Code, msgpackTwice.Message));
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame), (jsonTwice.Status, jsonTwice.Code));
        Assert.StartsWith(msgpackTwice.Message!, jsonTwice.Message, StringComparison.Ordinal);

        foreach (var message in new[] { empty.Message, comma.Message, jsonError.Payload!["message"]!.GetValue<string>(), huge.Payload!["message"]!.GetValue<string>(), jsonTwice.Message })
        {
            Wording.AssertOurs(message!);
        }

        Assert.Empty(await stored.DrainAsync());
    }

    private static byte[] Pack<T>(T value) => MessagePackSerializer.Serialize(value);

    /// <summary>A MessagePack map of the given keys, each value written as the raw MessagePack bytes given.</summary>
    private static byte[] Map(params (string Key, byte[] Value)[] entries)
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
}
