using Bridge.Testing;
using System.Net.WebSockets;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using MessagePack;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>Bad input gets its documented answer, the connection stays usable, and nothing reaches any subject.</summary>
public sealed class BadInputTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IAsyncLifetime
{
    private WorkerHost _worker = null!;
    private SubjectObserver _everything = null!;

    public async Task InitializeAsync()
    {
        _worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxFrameBytes", "4096"));
        // Sees every message on every subject of the server (bar its own inbox traffic).
        _everything = await SubjectObserver.StartAsync(nats.Server.Url);
    }

    public async Task DisposeAsync()
    {
        await _everything.DisposeAsync();
        await _worker.DisposeAsync();
    }

    [Fact]
    public async Task A_refused_ws_request_gets_400_with_a_code_and_message_body_as_every_refused_request()
    {
        using var http = new HttpClient();
        var url = new Uri(_worker.HttpUrl, "/ws");
        using (var plain = await http.GetAsync(url))
        {
            await AssertRefusalAsync(plain, "WebSocket upgrade expected on /ws");
        }

        // A WebSocket upgrade offering only a subprotocol the worker does not speak.
        using var upgrade = new HttpRequestMessage(HttpMethod.Get, url);
        upgrade.Headers.Connection.Add("Upgrade");
        upgrade.Headers.Upgrade.Add(new System.Net.Http.Headers.ProductHeaderValue("websocket"));
        upgrade.Headers.Add("Sec-WebSocket-Version", "13");
        upgrade.Headers.Add("Sec-WebSocket-Key", Convert.ToBase64String(new byte[16]));
        upgrade.Headers.Add("Sec-WebSocket-Protocol", "bridge.v2.json");
        using var refused = await http.SendAsync(upgrade);
        await AssertRefusalAsync(refused,
            $"unsupported subprotocol; offer {Subprotocols.Json}, {Subprotocols.MessagePack}, {Subprotocols.JsonBatch} or {Subprotocols.MessagePackBatch}");

        static async Task AssertRefusalAsync(HttpResponseMessage response, string message)
        {
            Assert.Equal(System.Net.HttpStatusCode.BadRequest, response.StatusCode);
            Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
            var body = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal((ErrorCodes.InvalidArgument, message), (body["code"]!.GetValue<string>(), body["message"]!.GetValue<string>()));
        }
    }

    public static TheoryData<string> BadRoomNames() =>
    [
        // Well-formed patterns (a.>, a.*) are joins of many rooms (PatternJoinTests); malformed ones are no names at all.
        "a.>.b", "a.*x", "a*", ">a", "a..b", ".a", "a.", "a b", " a", "a\tb", "a\nb", "a\u0000b", "a\u007fb",
        "caf\u00e9", "\uff41", "a\u200bb", "\u0430", new string('a', RoomName.MaxLength + 1),
        string.Join('.', Enumerable.Repeat("a", RoomName.MaxTokens + 1)), "",
    ];

    [Theory]
    [MemberData(nameof(BadRoomNames))]
    public async Task Invalid_room_names_are_refused_for_join_and_publish_in_both_formats(string room)
    {
        foreach (var protocol in new[] { Subprotocols.Json, Subprotocols.MessagePack })
        {
            await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, protocol);
            await client.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room, ["id"] = "j1" });
            var joinError = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
            Assert.Equal(ErrorCodes.InvalidRoom, joinError.ErrorCode);
            Assert.Equal("j1", joinError.Payload!["ref"]!.GetValue<string>());

            await client.PublishAsync(room, "x", id: "p1");
            var publishError = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
            Assert.Equal(ErrorCodes.InvalidRoom, publishError.ErrorCode);
            await AssertStillServesAsync(client);
        }

        await AssertNothingPublishedAsync();
    }

    public static TheoryData<string, string> BadJsonFrames() => new()
    {
        { "not json at all", ErrorCodes.BadFrame },
        { "[1,2,3]", ErrorCodes.BadFrame },
        { "\"just a string\"", ErrorCodes.BadFrame },
        { "{\"type\":\"chat.message\",", ErrorCodes.BadFrame },
        { "{\"type\":\"chat.message\",\"room\":\"ok\"} trailing", ErrorCodes.BadFrame },
        { "{\"type\":5,\"room\":\"ok\"}", ErrorCodes.BadFrame },
        { "{\"type\":\"chat.message\",\"room\":[\"ok\"]}", ErrorCodes.BadFrame },
        { "{\"type\":\"chat.message\",\"room\":\"ok\",\"enc\":\"base64\",\"payload\":\"@@not base64@@\"}", ErrorCodes.BadFrame },
        { "{\"type\":\"chat.message\",\"room\":\"ok\",\"enc\":\"rot13\",\"payload\":\"x\"}", ErrorCodes.BadFrame },
        { "{\"type\":\"chat.message\",\"room\":\"ok\",\"payload\":" + new string('[', 100) + new string(']', 100) + "}", ErrorCodes.BadFrame },
        { "{\"room\":\"ok\",\"payload\":1}", ErrorCodes.MissingField },
        { "{\"type\":\"chat.message\",\"payload\":1}", ErrorCodes.MissingField },
        { "{\"type\":\"room.join\"}", ErrorCodes.MissingField },
        { "{\"type\":\"room.bogus\",\"room\":\"ok\"}", ErrorCodes.UnknownType },
        { "{\"type\":\"welcome\",\"room\":\"ok\"}", ErrorCodes.UnknownType },
        { "{\"type\":\"ack\",\"room\":\"ok\"}", ErrorCodes.UnknownType },
        { "{\"type\":\"server.shutdown\",\"room\":\"ok\"}", ErrorCodes.UnknownType },
        { "{\"type\":\"bad type!\",\"room\":\"ok\"}", ErrorCodes.InvalidType },
        { "{\"type\":\"a..b\",\"room\":\"ok\"}", ErrorCodes.InvalidType },
        { "{\"type\":\"\",\"room\":\"ok\"}", ErrorCodes.InvalidType },
        { "{\"type\":\"chat.message\",\"room\":\"ok\",\"id\":\"has space\"}", ErrorCodes.InvalidId },
        { "{\"type\":\"chat.message\",\"room\":\"ok\",\"id\":\"" + new string('i', 65) + "\"}", ErrorCodes.InvalidId },
        { "{\"type\":\"room.leave\",\"room\":\"never.joined\"}", ErrorCodes.NotJoined },
    };

    [Theory]
    [MemberData(nameof(BadJsonFrames))]
    public async Task Bad_json_frames_get_their_error_code_and_the_connection_stays(string frame, string code)
    {
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, Subprotocols.Json);
        await client.SendRawAsync(Encoding.UTF8.GetBytes(frame));
        var error = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal(code, error.ErrorCode);
        Assert.False(string.IsNullOrEmpty(error.Payload!["message"]!.GetValue<string>()));
        await AssertStillServesAsync(client);
        await AssertNothingPublishedAsync();
    }

    public static TheoryData<string, string> BadMsgPackFrames() => new()
    {
        { "c1", ErrorCodes.BadFrame },                          // "never used" byte
        { "93010203", ErrorCodes.BadFrame },                    // array, not map
        { "a474657374", ErrorCodes.BadFrame },                  // a string
        { "82a474797065", ErrorCodes.BadFrame },                // truncated map
        { "810102", ErrorCodes.BadFrame },                      // integer key
        { "81a47479706505", ErrorCodes.BadFrame },              // type is an int
        { "83a474797065ac636861742e6d657373616765a4726f6f6da26f6ba77061796c6f6164d4ff02", ErrorCodes.BadFrame }, // a 1-byte timestamp
        { "83a474797065ac636861742e6d657373616765a4726f6f6da26f6ba77061796c6f6164d7ffffffffff00000000", ErrorCodes.BadFrame }, // timestamp nanoseconds >= 10^9
        { "83a474797065ac636861742e6d657373616765a4726f6f6da26f6ba77061796c6f616482a16101a16102", ErrorCodes.BadFrame }, // a key twice in the payload
        { "83a474797065ac636861742e6d657373616765a4726f6f6da26f6ba77061796c6f616481010a", ErrorCodes.BadFrame }, // int map key in payload
        { "83a474797065ac636861742e6d657373616765a4726f6f6da26f6ba77061796c6f6164cb7ff8000000000000", ErrorCodes.BadFrame }, // NaN
        { "82a474797065ac636861742e6d657373616765a4726f6f6da26f6b00", ErrorCodes.BadFrame }, // trailing byte
        { "81a4726f6f6da26f6b", ErrorCodes.MissingField },      // {room: ok}
        { "82a474797065aa726f6f6d2e626f677573a4726f6f6da26f6b", ErrorCodes.UnknownType }, // room.bogus
    };

    [Theory]
    [MemberData(nameof(BadMsgPackFrames))]
    public async Task Bad_msgpack_frames_get_their_error_code_and_the_connection_stays(string hex, string code)
    {
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, Subprotocols.MessagePack);
        await client.SendRawAsync(Convert.FromHexString(hex));
        var error = await client.WaitForAsync(f => f.Type == MessageTypes.Error);
        Assert.Equal(code, error.ErrorCode);
        await AssertStillServesAsync(client);
        await AssertNothingPublishedAsync();
    }

    [Theory]
    [InlineData(Subprotocols.Json, WebSocketMessageType.Text)]
    [InlineData(Subprotocols.Json, WebSocketMessageType.Binary)]
    [InlineData(Subprotocols.MessagePack, WebSocketMessageType.Binary)]
    [InlineData(Subprotocols.MessagePack, WebSocketMessageType.Text)]
    public async Task Each_empty_and_each_whitespace_message_gets_its_own_bad_frame(string protocol, WebSocketMessageType type)
    {
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, protocol);
        // Three empty messages and one of whitespace: four frames, four answers (the empty ones used to vanish).
        foreach (var frame in new[] { ""u8.ToArray(), ""u8.ToArray(), ""u8.ToArray(), " \t\r\n"u8.ToArray() })
        {
            await client.SendRawAsync(frame, type);
        }

        // The publish's ack comes after the answers to every frame sent before it.
        await client.SendAsync(new() { ["type"] = "chat.message", ["room"] = Names.Room("alive"), ["id"] = "after" });
        var answers = new List<Frame>();
        while (answers.LastOrDefault() is not { Type: MessageTypes.Ack })
        {
            answers.Add(await client.NextAsync());
        }

        Assert.Equal(4, answers.Count(f => f.ErrorCode == ErrorCodes.BadFrame));
        await AssertStillServesAsync(client);
    }

    [Fact]
    public async Task Deeply_nested_msgpack_is_refused_without_exhausting_the_stack()
    {
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, Subprotocols.MessagePack);
        // An unknown key whose value is 3,000 nested one-element arrays, and the same as a payload.
        var nested = Enumerable.Repeat((byte)0x91, 3000).Append((byte)0x01).ToArray();
        await client.SendRawAsync([0x81, 0xa1, (byte)'x', .. nested]);
        Assert.Equal(ErrorCodes.BadFrame, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);
        var header = Convert.FromHexString("83a474797065ac636861742e6d657373616765a4726f6f6da26f6ba77061796c6f6164");
        await client.SendRawAsync([.. header, .. nested]);
        Assert.Equal(ErrorCodes.BadFrame, (await client.WaitForAsync(f => f.Type == MessageTypes.Error)).ErrorCode);
        await AssertStillServesAsync(client);
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_frame_over_the_size_limit_closes_the_connection_with_1009_and_others_are_unaffected(string protocol)
    {
        await using var bystander = await TestClient.ConnectAsync(_worker.WebSocketUrl);
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, protocol);
        var big = new string('x', 5000);
        await client.PublishAsync("ok.room", big);
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, await client.Closed.WaitAsync(TimeSpan.FromSeconds(10)));
        await AssertStillServesAsync(bystander);
        await AssertNothingPublishedAsync();
    }

    [Fact]
    public async Task An_unsupported_subprotocol_is_refused_before_the_upgrade()
    {
        var socket = new ClientWebSocket();
        socket.Options.AddSubProtocol("mqtt");
        var ex = await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(_worker.WebSocketUrl, CancellationToken.None));
        Assert.Contains("400", ex.Message, StringComparison.Ordinal);
    }

    private static async Task AssertStillServesAsync(TestClient client)
    {
        var room = Names.Room("alive");
        await client.JoinAndWaitAsync(room);
        await client.PublishAsync(room, "still here");
        var echo = await client.WaitForAsync(f => f.Type == "chat.message" && f.Room == room);
        Assert.Equal("still here", echo.Payload!.GetValue<string>());
    }

    /// <summary>Only the liveness probes' rooms ever see traffic.</summary>
    private async Task AssertNothingPublishedAsync()
    {
        foreach (var subject in await _everything.DrainAsync())
        {
            var allowed = subject.StartsWith("rooms.alive.", StringComparison.Ordinal) ||
                          subject.StartsWith("live.rooms.alive.", StringComparison.Ordinal) ||
                          subject.StartsWith("$JS.", StringComparison.Ordinal) ||
                          subject.StartsWith("_INBOX.", StringComparison.Ordinal);
            Assert.True(allowed, $"unexpected message on {subject}");
        }
    }
}
