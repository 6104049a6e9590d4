using System.Buffers;
using System.Net;
using System.Net.WebSockets;
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

    // A chunked POST written by hand (HttpClient sets Transfer-Encoding itself): the status and the JSON of the answer.
    private static async Task<(int Status, string? Code, string? Message)> RawChunkedPostAsync(Uri url, string transferEncoding, byte[] body, string? apiKey = null)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(url.Host, url.Port);
        var stream = tcp.GetStream();
        var head = $"POST {url.PathAndQuery} HTTP/1.1\r\nHost: {url.Authority}\r\nConnection: close\r\nContent-Type: application/json\r\n" +
            $"Transfer-Encoding: {transferEncoding}\r\n" + (apiKey is null ? "" : $"X-Api-Key: {apiKey}\r\n") + "\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head + $"{body.Length:x}\r\n"));
        await stream.WriteAsync(body);
        await stream.WriteAsync("\r\n0\r\n\r\n"u8.ToArray());
        using var reader = new StreamReader(stream, Encoding.UTF8);
        var text = await reader.ReadToEndAsync().WaitAsync(TimeSpan.FromSeconds(30));
        var status = int.Parse(text.Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
        var (start, end) = (text.IndexOf('{', StringComparison.Ordinal), text.LastIndexOf('}'));
        var json = start >= 0 && end > start ? JsonNode.Parse(text[start..(end + 1)]) : null;
        return (status, json?["code"]?.GetValue<string>(), json?["message"]?.GetValue<string>());
    }

    [Fact]
    public async Task A_transfer_coding_other_than_chunked_gets_415_unsupported_encoding_and_nothing_is_stored()
    {
        await using var worker = await StartAsync();
        var room = Names.Room("te");
        await using var stored = await SubjectObserver.StartAsync(nats.Server.Url, $"rooms.{room}");

        // `gzip, chunked`: Kestrel takes the chunks off and leaves the gzip, which is refused as Content-Encoding is
        // (not read as a malformed body), on HTTP publish and on the backend API.
        foreach (var te in new[] { "gzip, chunked", "GZIP,chunked", "deflate, chunked" })
        {
            var publish = await RawChunkedPostAsync(MessagesUrl(worker, room), te, Gzip("""{"type":"chat.message","payload":1}"""));
            Assert.Equal((415, ErrorCodes.UnsupportedEncoding), (publish.Status, publish.Code));
            Assert.Equal($"Transfer-Encoding '{te}' is not supported: send the body uncompressed (no Transfer-Encoding other than chunked)", publish.Message);
            var backend = await RawChunkedPostAsync(new Uri(worker.HttpUrl, "/api/backend/publish"), te,
                Gzip($$"""{"room":"{{room}}","type":"chat.message","payload":1}"""), _key);
            Assert.Equal((415, ErrorCodes.UnsupportedEncoding), (backend.Status, backend.Code));
        }

        Assert.Empty(await stored.DrainAsync());

        // Chunked alone is the body as sent: stored.
        var chunked = await RawChunkedPostAsync(MessagesUrl(worker, room), "chunked", """{"type":"chat.message","payload":1}"""u8.ToArray());
        Assert.Equal(200, chunked.Status);
        Assert.Single(await stored.DrainAsync());
    }

    [Fact]
    public async Task An_unknown_backend_op_answers_404_before_its_content_type_encoding_or_body_are_looked_at()
    {
        await using var worker = await StartAsync();
        var nope = new Uri(worker.HttpUrl, "/api/backend/nope");
        foreach (var (body, type, encoding) in new (byte[], string, string?)[]
        {
            ("{}"u8.ToArray(), "application/json", null), ("{}"u8.ToArray(), "application/json", "gzip"),
            ("x"u8.ToArray(), "text/html", null), ("{,"u8.ToArray(), "application/json", null),
        })
        {
            var answer = await PostAsync(nope, body, type, encoding, _key);
            Assert.Equal((HttpStatusCode.NotFound, ErrorCodes.NotFound), (answer.Status, answer.Code));
            Assert.StartsWith("no such operation; the operations are publish, broadcast", answer.Message, StringComparison.Ordinal);
        }

        // Credentials still come first.
        var anonymous = await PostAsync(nope, "{}"u8.ToArray(), contentEncoding: "gzip");
        Assert.Equal((HttpStatusCode.Unauthorized, ErrorCodes.Unauthorized), (anonymous.Status, anonymous.Code));
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

        // An empty repeated rooms= is an empty name in that list, refused as `rooms=a,` is (not silently dropped).
        foreach (var path in new[] { $"/sse?rooms={a}&rooms=", $"/poll?rooms={a}&rooms=&cursor={a}%3D0", $"/sse?rooms={a}," })
        {
            using var response = await Http.GetAsync(new Uri(worker.HttpUrl, path));
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.InvalidRoom), (response.StatusCode, body["code"]!.GetValue<string>()));
        }
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

    [Fact]
    public async Task The_backend_api_words_bad_json_and_an_envelope_key_twice_as_a_clients_publish_and_a_blank_http_body_is_empty()
    {
        await using var worker = await StartAsync();
        var room = Names.Room("same");
        await using var stored = await SubjectObserver.StartAsync(nats.Server.Url, $"rooms.{room}");
        var publishUrl = new Uri(worker.HttpUrl, "/api/backend/publish");

        // Bad JSON: one prefix, as HTTP publish and WebSocket say it.
        var comma = await PostAsync(publishUrl, Encoding.UTF8.GetBytes($$$"""{"room":"{{{room}}}","type":"chat.message","payload":{"x":1,}}"""), apiKey: _key);
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame), (comma.Status, comma.Code));
        Assert.StartsWith("malformed JSON: a comma before '}' (trailing commas are not JSON) (line 1, byte ", comma.Message, StringComparison.Ordinal);

        // An envelope key twice, in JSON (also escaped) and MessagePack, on publish and broadcast: HTTP publish's words.
        var httpTwice = await PostAsync(MessagesUrl(worker, room), """{"id":"x","type":"chat.message","type":"chat.message"}"""u8.ToArray());
        Assert.Equal("duplicate name: envelope key 'type' appears twice", httpTwice.Message);
        foreach (var (url, body, contentType) in new (string, byte[], string)[]
        {
            ("publish", Encoding.UTF8.GetBytes($$"""{"room":"{{room}}","id":"x","type":"chat.message","type":"chat.message"}"""), "application/json"),
            ("publish", Encoding.UTF8.GetBytes($$"""{"room":"{{room}}","id":"x","type":"chat.message","typ\u0065":"chat.message"}"""), "application/json"),
            ("broadcast", Encoding.UTF8.GetBytes($$"""{"rooms":["{{room}}"],"type":"chat.message","type":"chat.message"}"""), "application/json"),
            ("publish", Map(("room", Pack(room)), ("type", Pack("chat.message")), ("type", Pack("chat.message"))), NatsSubjects.MessagePackContentType),
        })
        {
            var twice = await PostAsync(new Uri(worker.HttpUrl, $"/api/backend/{url}"), body, contentType, apiKey: _key);
            Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame, httpTwice.Message), (twice.Status, twice.Code, twice.Message));
        }

        // A name twice in the payload is no envelope key, though it is called type.
        var nested = await PostAsync(publishUrl, Encoding.UTF8.GetBytes($$$"""{"room":"{{{room}}}","type":"chat.message","payload":{"type":1,"type":2}}"""), apiKey: _key);
        Assert.Equal("duplicate name: 'type' appears twice in one object", nested.Message);

        // HTTP publish: a JSON body of whitespace alone is empty, as an empty one.
        foreach (var blank in new[] { " ", " \r\n\t " })
        {
            var answer = await PostAsync(MessagesUrl(worker, room), Encoding.UTF8.GetBytes(blank));
            Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame, Bridge.Worker.Transports.Http.PublishEndpoint.EmptyBody), (answer.Status, answer.Code, answer.Message));
        }

        // The backend API: a JSON body of whitespace alone is an empty body too (an empty object), answered as one.
        var empty = await PostAsync(publishUrl, [], apiKey: _key);
        Assert.Equal(HttpStatusCode.BadRequest, empty.Status);
        Assert.DoesNotContain("malformed", empty.Message, StringComparison.Ordinal);
        foreach (var blank in new[] { " ", " \r\n\t " })
        {
            var answer = await PostAsync(publishUrl, Encoding.UTF8.GetBytes(blank), apiKey: _key);
            Assert.Equal((empty.Status, empty.Code, empty.Message), (answer.Status, answer.Code, answer.Message));
        }

        Assert.Empty(await stored.DrainAsync());
    }

    [Fact]
    public async Task Messages_stored_with_a_type_reserved_in_another_case_are_replayed_as_message()
    {
        // Stored by an older worker (it compared reserved types exactly) or a backend writing to NATS: the read side
        // matches reserved types ignoring case too (docs/protocol.md §2, upgrade note), so a reader comparing types
        // without regard to case never takes them for the gateway's; an application type with capitals stays.
        await using var worker = await StartAsync();
        var room = Names.Room("old");
        await using (var connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url }))
        {
            var js = new NatsJSContext(connection);
            foreach (var type in new[] { "Ack", "Welcome", "Server.Status", "Presence.Update", "Chat.Message" })
            {
                var ack = await js.PublishAsync($"rooms.{room}", "1"u8.ToArray(), headers: new NatsHeaders { [NatsSubjects.TypeHeader] = type });
                ack.EnsureSuccess();
            }
        }

        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        await client.SendAsync(Store.Join(room, new() { ["since"] = 0 }));
        var replayed = await client.CollectAsync(5, f => f.Room == room && f.Seq > 0 && f.Type != MessageTypes.RoomJoined);
        Assert.Equal(["message", "message", "message", "message", "Chat.Message"], replayed.Select(f => f.Type));
    }

    [Fact]
    public async Task A_cursor_refusal_names_its_first_fault_in_reading_order()
    {
        // "b=x" is malformed before "a" is repeated: the generic rule, not "names room 'a' twice".
        await using var worker = await StartAsync();
        var (a, b) = (Names.Room("cur"), Names.Room("cur"));
        foreach (var (cursor, expected) in new[]
        {
            ($"{b}=x,{a}=1,{a}=2", "Last-Event-ID must be a seq (one room) or room=seq pairs separated by commas"),
            ($"{a}=1,{a}=2,{b}=x", $"Last-Event-ID names room '{a}' twice: one position per room"),
        })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(worker.HttpUrl, $"/sse?rooms={a},{b}"));
            request.Headers.Add("Last-Event-ID", cursor);
            using var response = await Http.SendAsync(request);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.InvalidArgument, expected),
                (response.StatusCode, body["code"]!.GetValue<string>(), body["message"]!.GetValue<string>()));
        }
    }

    [Fact]
    public async Task The_ignoring_case_hint_comes_only_when_the_case_alone_makes_a_type_reserved()
    {
        await using var worker = await StartAsync();
        var room = Names.Room("case");
        foreach (var (type, hint) in new[] { ("room.Bogus", false), ("server.X", false), ("Room.bogus", true), ("wELCOME", true), ("room.bogus", false) })
        {
            var refused = await PostAsync(MessagesUrl(worker, room), Encoding.UTF8.GetBytes($$"""{"type":"{{type}}","payload":1}"""));
            Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.UnknownType), (refused.Status, refused.Code));
            Assert.True(hint == refused.Message!.Contains("matched ignoring case", StringComparison.Ordinal), $"{type}: {refused.Message}");
        }
    }

    [Fact]
    public async Task A_long_name_twice_reads_the_same_whole_name_in_json_and_messagepack_and_nothing_is_stored()
    {
        // System.Text.Json cuts the names it reports to 15 characters and "...": the refusal finds the name itself.
        await using var worker = await StartAsync();
        var room = Names.Room("dup");
        await using var stored = await SubjectObserver.StartAsync(nats.Server.Url, $"rooms.{room}");
        const string Long = "notification_channel";
        var expected = $"duplicate name: '{Long}' appears twice in one object";

        // Backend API: a JSON body (System.Text.Json's document check) and the same body as MessagePack.
        var banUrl = new Uri(worker.HttpUrl, "/api/backend/ban");
        var jsonBody = await PostAsync(banUrl, Encoding.UTF8.GetBytes($$"""{"user":"a","{{Long}}":1,"{{Long}}":2,"ttl_seconds":5}"""), apiKey: _key);
        var msgpackBody = await PostAsync(banUrl, Map(("user", Pack("a")), (Long, Pack(1)), (Long, Pack(2)), ("ttl_seconds", Pack(5))), NatsSubjects.MessagePackContentType, apiKey: _key);
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame, expected), (msgpackBody.Status, msgpackBody.Code, msgpackBody.Message));
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame), (jsonBody.Status, jsonBody.Code));
        Assert.Equal(expected, jsonBody.Message);

        // WebSocket JSON payloads: past the 32 names the reader pass compares, and an escaped name ("\u006e" is "n").
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await json.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        var many = string.Join(",", Enumerable.Range(0, 40).Select(i => $"\"k{i}\":{i}"));
        foreach (var payload in new[] { $$"""{{{many}},"{{Long}}":1,"{{Long}}":2}""", $$"""{"{{Long}}":1,"\u006e{{Long[1..]}}":2}""" })
        {
            var id = "j-" + Guid.NewGuid().ToString("N")[..6];
            await json.SendRawAsync(Encoding.UTF8.GetBytes($$"""{"type":"chat.message","room":"{{room}}","id":"{{id}}","payload":{{payload}}}"""));
            var error = await json.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.Ack);
            Assert.Equal((ErrorCodes.BadFrame, id), (error.ErrorCode, error.Payload!["ref"]?.GetValue<string>()));
            Assert.Equal(expected, error.Payload!["message"]!.GetValue<string>());
        }

        // WebSocket MessagePack: the same name, and one of 63 characters and an emoji, cut before the emoji (a cut
        // inside its surrogate pair would send text that is not Unicode: U+FFFD on the wire).
        await using var msgpack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await msgpack.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        var emoji = new string('a', 63) + "\U0001F600";
        foreach (var (name, message) in new[] { (Long, expected), (emoji, $"duplicate name: '{new string('a', 63)}...' appears twice in one object") })
        {
            var id = "m-" + Guid.NewGuid().ToString("N")[..6];
            var payload = Map((name, Pack(1)), (name, Pack(2)));
            await msgpack.SendRawAsync(Map(("type", Pack("chat.message")), ("room", Pack(room)), ("id", Pack(id)), ("payload", payload)));
            var error = await msgpack.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.Ack);
            Assert.Equal((ErrorCodes.BadFrame, id, message), (error.ErrorCode, error.Payload!["ref"]?.GetValue<string>(), error.Payload!["message"]!.GetValue<string>()));
        }

        Assert.Empty(await stored.DrainAsync());
    }

    [Fact]
    public async Task A_payload_nested_too_deep_is_refused_with_the_same_limit_in_json_and_messagepack()
    {
        // 33 levels of arrays in the payload: one too many. JSON's reader counts the envelope too (33 + 1): the
        // refusal still says the payload's limit, 32, as MessagePack and docs/protocol.md do.
        await using var worker = await StartAsync();
        var room = Names.Room("deep");
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await json.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        var deep = new string('[', 33) + new string(']', 33);
        await json.SendRawAsync(Encoding.UTF8.GetBytes($$"""{"type":"chat.message","room":"{{room}}","id":"d1","payload":{{deep}}}"""));
        var jsonError = await json.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.Ack);
        Assert.Equal(ErrorCodes.BadFrame, jsonError.ErrorCode);
        Assert.Contains("nests deeper than 32 levels", jsonError.Payload!["message"]!.GetValue<string>(), StringComparison.Ordinal);

        // 32 levels are fine.
        var fine = new string('[', 32) + new string(']', 32);
        await json.SendRawAsync(Encoding.UTF8.GetBytes($$"""{"type":"chat.message","room":"{{room}}","id":"d2","payload":{{fine}}}"""));
        var ack = await json.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.Ack);
        Assert.True((ack.Type, ack.Id) == (MessageTypes.Ack, "d2"), ack.ToString());

        await using var msgpack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await msgpack.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        var nested = Enumerable.Repeat((byte)0x91, 32).Append((byte)0x90).ToArray();
        await msgpack.SendRawAsync(Map(("type", Pack("chat.message")), ("room", Pack(room)), ("id", Pack("d3")), ("payload", nested)));
        var msgpackError = await msgpack.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.Ack);
        Assert.Equal(ErrorCodes.BadFrame, msgpackError.ErrorCode);
        Assert.Contains("nests deeper than 32 levels", msgpackError.Payload!["message"]!.GetValue<string>(), StringComparison.Ordinal);
    }

    private static byte[] Pack<T>(T value) => HttpMessagePackPublishTests.Pack(value);

    private static byte[] Map(params (string Key, byte[] Value)[] entries) => HttpMessagePackPublishTests.Map(entries);
}
