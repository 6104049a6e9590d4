using System.Net;
using System.Net.WebSockets;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Transports.WebSockets;
using NATS.Client.Core;
using NATS.Client.JetStream;
using static Bridge.Tests.Infrastructure.Raw;

namespace Bridge.Tests.Integration;

/// <summary>
/// Text that is not valid UTF-8 (or JSON escapes of lone surrogates) never gets stored from a client, and a stored
/// message that still holds such bytes (a backend wrote them straight into NATS) reaches every member in a form it
/// can read, never stops the room's delivery and never blocks a resume (issue 12, kind 1).
/// </summary>
public sealed class InvalidTextTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IAsyncLifetime
{
    private static readonly HttpClient Http = new();
    private WorkerHost _worker = null!;
    private SubjectObserver _stored = null!;

    public async Task InitializeAsync()
    {
        _worker = await WorkerHost.StartAsync(nats.Server);
        _stored = await SubjectObserver.StartAsync(nats.Server.Url, "rooms.>");
    }

    public async Task DisposeAsync()
    {
        await _stored.DisposeAsync();
        await _worker.DisposeAsync();
    }

    /// <summary>Publishes with bad text, as the JSON envelope, from a payload string down to a key at depth.</summary>
    public static TheoryData<string, byte[]> BadJsonPublishes()
    {
        var data = new TheoryData<string, byte[]>
        {
            // The input of the issue, byte for byte.
            { "issue input", [.. """{"type":"chat.message","room":"r1","id":"u1","payload":{"s":"A"""u8, 0xFF, .. "B\"}}"u8] },
        };
        foreach (var bad in InvalidUtf8)
        {
            var hex = Convert.ToHexString(bad);
            data.Add($"payload string {hex}", Publish(Bad("A", bad, "B")).ToJson());
            data.Add($"nested string {hex}", Publish(M(("a", L(N(1), M(("b", L(Bad("", bad)))))))).ToJson());
            data.Add($"nested key {hex}", Publish(M(("a", MK(Bad("k", bad), N(1))))).ToJson());
            data.Add($"unknown envelope key {hex}", M(("type", S("chat.message")), ("room", S("r1")), ("id", S("u1")), ("x", Bad("", bad))).ToJson());
        }

        data.Add("escaped lone high surrogate", Publish(M(("s", LoneSurrogate("A")))).ToJson());
        data.Add("escaped lone low surrogate", Encoding.UTF8.GetBytes("""{"type":"chat.message","room":"r1","id":"u1","payload":{"s":"\udc00x"}}"""));
        data.Add("escaped reversed pair", Encoding.UTF8.GetBytes("""{"type":"chat.message","room":"r1","id":"u1","payload":["\udc00\ud800"]}"""));
        data.Add("escaped lone surrogate in a key", Encoding.UTF8.GetBytes("""{"type":"chat.message","room":"r1","id":"u1","payload":{"\ud800":1}}"""));
        return data;

        static RawValue Publish(RawValue payload) => M(("type", S("chat.message")), ("room", S("r1")), ("id", S("u1")), ("payload", payload));
    }

    [Theory]
    [MemberData(nameof(BadJsonPublishes))]
    public async Task A_json_publish_in_a_binary_frame_with_bad_text_gets_bad_frame_with_its_id_and_nothing_is_stored_or_delivered(string name, byte[] frame)
    {
        _ = name;
        var room = Names.Room("r1");
        var bytes = ReplaceRoom(frame, room);
        await using var member = await TestClient.ConnectAsync(_worker.WebSocketUrl, Subprotocols.MessagePack);
        await member.JoinAndWaitAsync(room);
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, Subprotocols.Json);
        await client.SendRawAsync(bytes, WebSocketMessageType.Binary);
        var error = await client.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.Ack);
        Assert.Equal(ErrorCodes.BadFrame, error.ErrorCode);
        // The id was read, so the client can tell which publish was refused (and must not retry it).
        Assert.Equal("u1", error.Payload!["ref"]?.GetValue<string>());

        await AssertStillServesAsync(client);
        Assert.True(await member.NothingArrivesAsync(f => f.Type == "chat.message", TimeSpan.FromMilliseconds(300)));
        await AssertNothingStoredAsync(room);
    }

    public static TheoryData<string, byte[]> BadMsgPackPublishes()
    {
        var data = new TheoryData<string, byte[]>();
        foreach (var bad in InvalidUtf8)
        {
            var hex = Convert.ToHexString(bad);
            data.Add($"payload str {hex}", Publish(Bad("A", bad, "B")).ToMsgPack());
            data.Add($"nested str {hex}", Publish(M(("a", L(N(1), M(("b", L(Bad("", bad)))))))).ToMsgPack());
            data.Add($"nested map key {hex}", Publish(M(("a", MK(Bad("k", bad), N(1))))).ToMsgPack());
            data.Add($"type {hex}", M(("type", Bad("chat.", bad)), ("room", S("r1")), ("id", S("u1"))).ToMsgPack());
            data.Add($"unknown key's value {hex}", M(("type", S("chat.message")), ("room", S("r1")), ("id", S("u1")), ("x", L(Bad("", bad)))).ToMsgPack());
            data.Add($"envelope key {hex}", new RawValue.Map([(S("type"), S("chat.message")), (S("room"), S("r1")), (S("id"), S("u1")), (Bad("k", bad), N(1))]).ToMsgPack());
        }

        return data;

        static RawValue Publish(RawValue payload) => M(("type", S("chat.message")), ("room", S("r1")), ("id", S("u1")), ("payload", payload));
    }

    [Theory]
    [MemberData(nameof(BadMsgPackPublishes))]
    public async Task A_msgpack_publish_with_a_str_that_is_not_utf8_gets_bad_frame_and_nothing_is_stored(string name, byte[] frame)
    {
        _ = name;
        var room = Names.Room("r1");
        await using var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, Subprotocols.MessagePack);
        await client.SendRawAsync(ReplaceRoom(frame, room, msgpack: true));
        var error = await client.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.Ack);
        Assert.Equal(ErrorCodes.BadFrame, error.ErrorCode);
        await AssertStillServesAsync(client);
        await AssertNothingStoredAsync(room);
    }

    [Theory]
    [MemberData(nameof(BadJsonPublishes))]
    public async Task An_http_publish_with_bad_text_gets_400_bad_frame_and_nothing_is_stored(string name, byte[] body)
    {
        _ = name;
        var room = Names.Room("r1");
        using var content = new ByteArrayContent(ReplaceRoom(body, room));
        content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
        using var response = await Http.PostAsync(new Uri(_worker.HttpUrl, $"/api/rooms/{room}/messages"), content);
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var problem = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
        Assert.Equal(ErrorCodes.BadFrame, problem["code"]!.GetValue<string>());
        await AssertNothingStoredAsync(room);
    }

    /// <summary>The body's room, "r1" in the seeds, renamed to a room of this test (the bytes around it stay as they are).</summary>
    private static byte[] ReplaceRoom(byte[] frame, string room, bool msgpack = false)
    {
        byte[] from = msgpack ? [0xA2, (byte)'r', (byte)'1'] : "\"r1\""u8.ToArray();
        byte[] to = msgpack ? [(byte)(0xA0 | room.Length), .. Encoding.ASCII.GetBytes(room)] : Encoding.ASCII.GetBytes($"\"{room}\"");
        var at = frame.AsSpan().IndexOf(from);
        return at < 0 ? frame : [.. frame.AsSpan(0, at), .. to, .. frame.AsSpan(at + from.Length)];
    }

    private async Task AssertStillServesAsync(TestClient client)
    {
        var room = Names.Room("alive");
        await client.JoinAndWaitAsync(room);
        await client.PublishAsync(room, "still here");
        var echo = await client.WaitForAsync(f => f.Type == "chat.message" && f.Room == room);
        Assert.Equal("still here", echo.Payload!.GetValue<string>());
    }

    private async Task AssertNothingStoredAsync(string room) => Assert.DoesNotContain($"rooms.{room}", await _stored.DrainAsync());

    [Fact]
    public async Task A_text_frame_that_is_not_utf8_closes_the_connection_with_1007_and_the_client_sees_that_close()
    {
        // Several connections in turn: the close frame used to be lost to a TCP reset now and then (seen as 1006).
        // Without the linger this fails only when the reset overtakes the close on one of the tries: not every run.
        for (var attempt = 0; attempt < 10; attempt++)
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            using var client = new ClientWebSocket();
            client.Options.AddSubProtocol(Subprotocols.Json);
            await client.ConnectAsync(_worker.WebSocketUrl, timeout.Token);
            var buffer = new byte[4096];
            var welcome = await client.ReceiveAsync(buffer, timeout.Token);
            Assert.Contains("\"welcome\"", Encoding.UTF8.GetString(buffer, 0, welcome.Count), StringComparison.Ordinal);

            // ClientWebSocket sends text bytes as given: 0xFF is never UTF-8.
            await client.SendAsync(new byte[] { 0xFF }, WebSocketMessageType.Text, endOfMessage: true, timeout.Token);
            WebSocketReceiveResult result;
            do
            {
                result = await client.ReceiveAsync(buffer, timeout.Token);
            }
            while (result.MessageType != WebSocketMessageType.Close);

            Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, result.CloseStatus);
            Assert.Equal(WebSocketCloseStatus.InvalidPayloadData, client.CloseStatus);
            await client.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
        }
    }

    [Fact]
    public async Task A_worker_stopping_while_a_connection_lingers_after_its_1007_stops_promptly()
    {
        // CloseTimeout and DrainTimeout far beyond the bound below: only the shutdown can end the linger in time.
        var worker = await WorkerHost.StartAsync(
            nats.Server,
            ("Bridge:Connections:CloseTimeout", "00:10:00"),
            ("Bridge:Shutdown:DrainTimeout", "00:01:00"),
            ("Bridge:Shutdown:ReconnectSpread", "00:00:00"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var tcp = new System.Net.Sockets.TcpClient();
        var stream = await RawUpgradeAsync(worker, tcp, timeout.Token);

        // A text frame that is not UTF-8: the worker closes with 1007 and lingers for the answer that never comes.
        await stream.WriteAsync(new byte[] { 0x81, 0x81, 0, 0, 0, 0, 0xFF }, timeout.Token);
        // Frames from the worker (unmasked): the welcome, then the close.
        var header = new byte[2];
        byte[] payload;
        do
        {
            await stream.ReadExactlyAsync(header, timeout.Token);
            var length = header[1] & 0x7F;
            if (length == 126)
            {
                var extended = new byte[2];
                await stream.ReadExactlyAsync(extended, timeout.Token);
                length = (extended[0] << 8) | extended[1];
            }

            payload = new byte[length];
            await stream.ReadExactlyAsync(payload, timeout.Token);
        }
        while (header[0] != 0x88);

        Assert.Equal(1007, (payload[0] << 8) | payload[1]);

        var stopping = System.Diagnostics.Stopwatch.StartNew();
        await worker.DisposeAsync();
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(5), $"the worker took {stopping.Elapsed} to stop");
    }

    // Upgrades a raw TCP connection to a JSON WebSocket (no client library: nothing answers the worker's close).
    private static async Task<System.Net.Sockets.NetworkStream> RawUpgradeAsync(WorkerHost worker, System.Net.Sockets.TcpClient tcp, CancellationToken cancellationToken)
    {
        await tcp.ConnectAsync(worker.WebSocketUrl.Host, worker.WebSocketUrl.Port, cancellationToken);
        var stream = tcp.GetStream();
        var upgrade = $"GET /ws HTTP/1.1\r\nHost: {worker.WebSocketUrl.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                      $"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {Convert.ToBase64String(new byte[16])}\r\nSec-WebSocket-Protocol: {Subprotocols.Json}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(upgrade), cancellationToken);
        var response = new StringBuilder();
        while (!response.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var b = new byte[1];
            Assert.Equal(1, await stream.ReadAsync(b, cancellationToken));
            response.Append((char)b[0]);
        }

        Assert.StartsWith("HTTP/1.1 101", response.ToString(), StringComparison.Ordinal);
        return stream;
    }

    [Fact]
    public async Task A_client_that_keeps_sending_after_the_1007_is_cut_off_after_the_linger_byte_budget()
    {
        // CloseTimeout far beyond the test's own bound: only the byte budget can end the connection here.
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:CloseTimeout", "00:10:00"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(worker.WebSocketUrl.Host, worker.WebSocketUrl.Port, timeout.Token);
        var stream = tcp.GetStream();

        // A raw client: its frames (zero mask, zero payload) never hold a byte that could end like a close frame.
        var upgrade = $"GET /ws HTTP/1.1\r\nHost: {worker.WebSocketUrl.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                      $"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {Convert.ToBase64String(new byte[16])}\r\nSec-WebSocket-Protocol: {Subprotocols.Json}\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(upgrade), timeout.Token);
        var response = new StringBuilder();
        while (!response.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
        {
            var b = new byte[1];
            Assert.Equal(1, await stream.ReadAsync(b, timeout.Token));
            response.Append((char)b[0]);
        }

        Assert.StartsWith("HTTP/1.1 101", response.ToString(), StringComparison.Ordinal);

        // A masked text frame holding 0xFF (never UTF-8): the worker's WebSocket layer closes with 1007.
        await stream.WriteAsync(new byte[] { 0x81, 0x81, 0, 0, 0, 0, 0xFF }, timeout.Token);

        // Then the client never reads the close and streams binary frames: at most 1024 × the budget, then the test gives up.
        byte[] frame = [0x82, 0xFE, 0x40, 0x00, 0, 0, 0, 0, .. new byte[16 * 1024]];
        var sent = 0L;
        var cutOff = false;
        try
        {
            while (sent < 1024L * WebSocketConnection.LingerBytes)
            {
                await stream.WriteAsync(frame, timeout.Token);
                sent += frame.Length;
            }
        }
        catch (IOException)
        {
            cutOff = true;
        }

        Assert.True(cutOff, $"the worker read {sent} bytes after its 1007 close and did not end the connection");
    }
}

/// <summary>
/// A backend writes bytes that claim to be JSON but are not UTF-8 text straight into a room's subject. Runs in the
/// metrics collection: it reads the fallback counter, which every worker in the process reports under one name.
/// </summary>
[Collection(MetricsCollection.Name)]
public sealed class BackendInvalidTextTests : IAsyncLifetime
{
    private Bridge.Testing.NatsServerProcess _nats = null!;

    public async Task InitializeAsync() => _nats = await Bridge.Testing.NatsServerProcess.StartAsync();

    public async Task DisposeAsync() => await _nats.DisposeAsync();

    [Fact]
    public async Task A_backend_message_that_claims_json_but_is_not_utf8_reaches_every_member_as_binary_and_the_room_keeps_flowing_and_resuming()
    {
        await using var worker = await WorkerHost.StartAsync(_nats);
        using var http = new HttpClient { BaseAddress = worker.HttpUrl, Timeout = TimeSpan.FromSeconds(5) };
        var fallbacksBefore = await MetricsScrape.SumAsync(http, "bridge_messages_fallback_total", "outcome=\"binary\"");
        var room = Names.Room("be");
        await using var json = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await using var pack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, room);
        await json.JoinAndWaitAsync(room);
        await pack.JoinAndWaitAsync(room);
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);

        byte[] invalid = [.. """{"s":"A"""u8, 0xFF, .. "B\"}"u8];
        var surrogate = """{"s":"\ud800"}"""u8.ToArray();
        await using var backend = new NatsConnection(new NatsOpts { Url = _nats.Url });
        var js = new NatsJSContext(backend);
        foreach (var (type, body, contentType) in new[]
                 {
                     ("x.invalid", invalid, "application/json"),
                     ("x.surrogate", surrogate, "application/json; charset=utf-8"),
                     ("x.good", """{"ok":1}"""u8.ToArray(), "application/json"),
                 })
        {
            var ack = await js.PublishAsync($"rooms.{room}", body,
                headers: new NatsHeaders { [NatsSubjects.TypeHeader] = type, [NatsSubjects.ContentTypeHeader] = contentType });
            ack.EnsureSuccess();
        }

        // Every member, whatever its format, gets the two bad bodies as binary payloads, byte for byte, then the next message.
        var jsonFrames = await json.CollectAsync(3, f => f.Type?.StartsWith("x.", StringComparison.Ordinal) == true);
        Assert.Equal(["x.invalid", "x.surrogate", "x.good"], jsonFrames.Select(f => f.Type));
        AssertBase64(invalid, jsonFrames[0]);
        AssertBase64(surrogate, jsonFrames[1]);
        Assert.Equal(1, jsonFrames[2].Payload!["ok"]!.GetValue<int>());

        var packFrames = await pack.CollectAsync(3, f => f.Type?.StartsWith("x.", StringComparison.Ordinal) == true);
        Assert.Equal(["x.invalid", "x.surrogate", "x.good"], packFrames.Select(f => f.Type));
        Assert.Equal(invalid, Assert.IsType<byte[]>(packFrames[0].MsgPack!["payload"]));
        Assert.Equal(surrogate, Assert.IsType<byte[]>(packFrames[1].MsgPack!["payload"]));

        var events = await sse.CollectAsync(3, e => e.Event.StartsWith("x.", StringComparison.Ordinal));
        Assert.Equal(["x.invalid", "x.surrogate", "x.good"], events.Select(e => e.Event));
        Assert.Equal(invalid, Convert.FromBase64String(events[0].Json["payload"]!.GetValue<string>()));

        // A resume from the start, in both formats, replays all three (it used to fail with `unavailable` every time).
        foreach (var protocol in new[] { Subprotocols.MessagePack, Subprotocols.Json })
        {
            await using var resumer = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
            await resumer.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room, ["payload"] = new Dictionary<string, object?> { ["since"] = 0 } });
            var replayed = await resumer.CollectAsync(3, f => f.Type?.StartsWith("x.", StringComparison.Ordinal) == true);
            Assert.Equal(["x.invalid", "x.surrogate", "x.good"], replayed.Select(f => f.Type));
            var joined = await resumer.WaitForAsync(f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error);
            Assert.Equal(MessageTypes.RoomJoined, joined.Type);
            Assert.Equal(3, joined.Payload!["replayed"]!.GetValue<int>());

            // And room.state carries them too.
            await resumer.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = room, ["payload"] = new Dictionary<string, object?> { ["limit"] = 3 } });
            var state = await resumer.WaitForAsync(f => f.Type is MessageTypes.RoomState or MessageTypes.Error);
            Assert.Equal(MessageTypes.RoomState, state.Type);
            Assert.Equal(3, state.Payload!["messages"]!.AsArray().Count);
        }

        // Counted: each read of a body that claimed JSON and was delivered as binary.
        await Eventually.TrueAsync(async () => await MetricsScrape.SumAsync(http, "bridge_messages_fallback_total", "outcome=\"binary\"") >= fallbacksBefore + 2,
            because: "bridge_messages_fallback_total did not count the two bodies");
    }

    private static void AssertBase64(byte[] expected, Frame frame)
    {
        Assert.Equal("base64", frame.Json["enc"]?.GetValue<string>());
        Assert.Equal(expected, Convert.FromBase64String(frame.Payload!.GetValue<string>()));
    }
}
