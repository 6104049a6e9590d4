using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Unicode;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using CsCheck;
using MessagePack;
using NATS.Client.Core;
using NATS.Client.JetStream;
using static Bridge.Tests.Infrastructure.Raw;

namespace Bridge.Tests.Security;

/// <summary>
/// Property-based fuzzing (CsCheck) of both decoders with random, mutated and generated frames: every frame decodes
/// or gets a decode error, never an exception; and whatever a decoder accepts, both encoders and every argument
/// reader take without an exception. Over a real socket (and HTTP publish, and a backend's NATS publish) the worker
/// answers every frame, closes only with documented codes, keeps serving other clients, every member can read every
/// message, and its memory stays flat.
/// </summary>
public sealed class FuzzTests
{
    // Cases per property (each runs in well under a second to a few seconds on this machine).
    internal const int MutatedFrames = 30_000;
    internal const int GeneratedFrames = 20_000;

    internal static readonly byte[][] JsonSeeds =
    [
        """{"type":"room.join","room":"fz.a","payload":{"since":0}}"""u8.ToArray(),
        """{"type":"chat.message","room":"fz.a","id":"m1","payload":{"text":"hi","n":[1,2,{"x":null}]}}"""u8.ToArray(),
        """{"type":"room.sync","room":"fz.a","payload":{"limit":5}}"""u8.ToArray(),
        """{"type":"room.join","payload":{"rooms":[{"room":"fz.a","since":1},{"room":"fz.b"}]}}"""u8.ToArray(),
        """{"type":"chat.blob","room":"fz.a","enc":"base64","payload":"aGVsbG8="}"""u8.ToArray(),
        """{"type":"auth.refresh","payload":{"token":"x.y.z"}}"""u8.ToArray(),
        """{"type":"chat.message","room":"fz.a","id":"m2","payload":{"s":"caf\u00e9 \ud83d\ude00","k\u00e9y":["\n"]}}"""u8.ToArray(),
        """{"type":"presence.query","room":"fz.a","id":"q"}"""u8.ToArray(),
        """{"type":"bridge.ping","id":"p"}"""u8.ToArray(),
        ""u8.ToArray(),
        " \r\n\t"u8.ToArray(),
    ];

    internal static readonly byte[][] MsgPackSeeds =
    [
        MessagePackSerializer.Serialize(new Dictionary<string, object?> { ["type"] = "room.join", ["room"] = "fz.a" }),
        MessagePackSerializer.Serialize(new Dictionary<string, object?>
        {
            ["type"] = "chat.message", ["room"] = "fz.a", ["id"] = "m1",
            ["payload"] = new Dictionary<string, object?> { ["t"] = 1.5, ["b"] = new byte[] { 1, 2, 3 }, ["l"] = new object[] { 1, "a", null! } },
        }),
        MessagePackSerializer.Serialize(new Dictionary<string, object?> { ["type"] = "room.sync", ["room"] = "fz.a", ["payload"] = new Dictionary<string, object?> { ["limit"] = 3 } }),
        MessagePackSerializer.Serialize(new Dictionary<string, object?>
        {
            ["type"] = "room.join", ["payload"] = new Dictionary<string, object?> { ["rooms"] = new object[] { new Dictionary<string, object?> { ["room"] = "fz.a", ["since"] = 1UL } } },
        }),
        MessagePackSerializer.Serialize(new Dictionary<string, object?> { ["type"] = "chat.message", ["room"] = "fz.a", ["payload"] = new Dictionary<string, object?> { ["s"] = "caf\u00e9 \U0001F600" } }),
        [],
    ];

    /// <summary>
    /// A string: mostly names and text a client would send, often with one of the byte sequences that are not UTF-8
    /// or (JSON) an escaped lone surrogate, anywhere in it.
    /// </summary>
    internal static readonly Gen<RawValue> Texts = Gen.Frequency(
        (6, Gen.OneOf("fz.a", "fz.b", "chat.message", MessageTypes.RoomJoin, MessageTypes.RoomSync, MessageTypes.RoomLeave,
            MessageTypes.AuthRefresh, MessageTypes.PresenceQuery, MessageTypes.Ping, "", "m1", "x.y.z", "caf\u00e9", "\U0001F600", " ", "a..b").Select(S)),
        (2, Gen.String[0, 24].Select(S)),
        (3, Gen.Select(Gen.Int[0, InvalidUtf8.Length - 1], Gen.String[0, 6], Gen.String[0, 6], (bad, before, after) => Bad(before, InvalidUtf8[bad], after))),
        (1, Gen.OneOf("\\ud800", "\\udc00x", "a\\udfff").Select(e => (RawValue)new RawValue.Literal($"\"{e}\"", Bad("a", [0xED, 0xA0, 0x80])))));

    private static readonly Gen<RawValue> Scalars = Gen.Frequency(
        (4, Texts),
        (2, Gen.Long.Select(N)),
        (1, Gen.ULong.Select(U)),
        (1, Gen.Double.Where(double.IsFinite).Select(F)),
        (1, Gen.Bool.Select(B)),
        (1, Gen.Const(Null)),
        (1, Gen.Const(HugeNumber)));

    /// <summary>Any value, nested up to 6 levels, with keys from <see cref="Texts"/>.</summary>
    internal static readonly Gen<RawValue> Values = Gen.Recursive<RawValue>((depth, values) => depth >= 6
        ? Scalars
        : Gen.Frequency(
            (4, Scalars),
            (1, values.Array[0, 4].Select(items => L(items))),
            (1, Gen.Select(Texts, values).Array[0, 4].Select(entries => (RawValue)new RawValue.Map(entries)))));

    /// <summary>Arguments of the request types: the right names with values of any kind.</summary>
    private static readonly Gen<RawValue> Arguments = Gen.OneOf(
        Values.Select(v => M(("since", v))),
        Values.Select(v => M(("limit", v))),
        Values.Select(v => M(("token", v))),
        Gen.Select(Values, Values, (room, since) => M(("rooms", L(M(("room", room), ("since", since)), M(("room", S("fz.b"))))))),
        Values.Select(v => M(("rooms", v))),
        Values);

    // A field left out of the envelope.
    private static readonly Gen<RawValue> Absent = Gen.Const((RawValue)null!);

    /// <summary>Envelopes of every request type (and publishes) with generated fields, arguments and payloads.</summary>
    internal static readonly Gen<RawValue> Envelopes = Gen.Select(
        Gen.Frequency((3, Gen.OneOf(MessageTypes.RoomJoin, MessageTypes.RoomSync, MessageTypes.RoomLeave, MessageTypes.AuthRefresh,
            MessageTypes.PresenceQuery, MessageTypes.Ping, "chat.message").Select(S)), (1, Texts), (1, Scalars)),
        Gen.Frequency((4, Gen.Const(S("fz.a"))), (2, Texts), (1, Scalars), (1, Absent)),
        Gen.Frequency((3, Absent), (2, Texts), (1, Scalars)),
        Gen.Frequency((1, Absent), (3, Arguments)),
        Gen.Frequency((6, Absent), (1, Gen.Const(S("base64"))), (1, Texts)),
        Gen.Frequency((6, Absent), (1, Values)),
        (type, room, id, payload, enc, extra) =>
        {
            var entries = new List<(RawValue, RawValue)> { (S("type"), type) };
            if (room is not null)
            {
                entries.Add((S("room"), room));
            }

            if (id is not null)
            {
                entries.Add((S("id"), id));
            }

            if (payload is not null)
            {
                entries.Add((S("payload"), payload));
            }

            if (enc is not null)
            {
                entries.Add((S("enc"), enc));
            }

            if (extra is not null)
            {
                entries.Add((S("x"), extra));
            }

            return (RawValue)new RawValue.Map([.. entries]);
        });

    /// <summary>Random bytes, or a seed frame with one of several mutations (byte flips, cuts, splices, nesting bombs).</summary>
    internal static Gen<byte[]> Frames(byte[][] seeds) =>
        Gen.Frequency(
            (1, Gen.Byte.Array[0, 300]),
            (4, Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Int[0, 5], Gen.Int[0, 1000], Gen.Byte.Array[1, 8], (s, op, at, bytes) => Mutate(seeds[s], op, at, bytes))));

    private static byte[] Mutate(byte[] seed, int op, int at, byte[] bytes)
    {
        var position = seed.Length == 0 ? 0 : at % seed.Length;
        var list = seed.ToList();
        switch (op)
        {
            case 0: // overwrite
                for (var i = 0; i < bytes.Length && position + i < list.Count; i++)
                {
                    list[position + i] = bytes[i];
                }

                break;
            case 1: // insert
                list.InsertRange(position, bytes);
                break;
            case 2: // cut the tail
                list.RemoveRange(position, list.Count - position);
                break;
            case 3: // delete a few bytes
                list.RemoveRange(position, Math.Min(bytes.Length, list.Count - position));
                break;
            case 4: // deep nesting (JSON arrays or msgpack fixarrays)
                var open = bytes[0] % 2 == 0 ? (byte)'[' : (byte)0x91;
                list.InsertRange(position, Enumerable.Repeat(open, 200 + (at % 5000)));
                break;
            default: // duplicate a slice
                list.InsertRange(position, seed.Skip(position).Take(bytes.Length * 4));
                break;
        }

        return [.. list];
    }

    /// <summary>Publishes to <c>fz.a</c> that are well-formed but for what their payload holds (unique ids or none).</summary>
    internal static readonly Gen<RawValue> Publishes = Gen.Select(
        Gen.Frequency((1, Absent), (1, Gen.Guid.Select(g => S(g.ToString("N"))))),
        Values,
        (id, payload) => id is null
            ? M(("type", S("chat.message")), ("room", S("fz.a")), ("payload", payload))
            : M(("type", S("chat.message")), ("room", S("fz.a")), ("id", id), ("payload", payload)));

    /// <summary>Random, mutated and generated frames of one format.</summary>
    internal static Gen<byte[]> AllFrames(bool json) => Gen.Frequency(
        (2, Frames(json ? JsonSeeds : MsgPackSeeds)),
        (2, Envelopes.Select(e => json ? e.ToJson() : e.ToMsgPack())),
        (1, Publishes.Select(e => json ? e.ToJson() : e.ToMsgPack())));

    [Fact]
    public void Json_decoder_never_throws_on_random_and_mutated_frames() =>
        Frames(JsonSeeds).Sample(frame => DecodesOrRefuses(JsonFrameCodec.Instance, frame), iter: MutatedFrames);

    [Fact]
    public void MessagePack_decoder_never_throws_on_random_and_mutated_frames() =>
        Frames(MsgPackSeeds).Sample(frame => DecodesOrRefuses(MessagePackFrameCodec.Instance, frame), iter: MutatedFrames);

    [Fact]
    public void Json_decoder_refuses_any_bad_text_and_accepts_only_what_every_encoder_and_argument_reader_can_take() =>
        Envelopes.Sample(frame => RefusesBadText(JsonFrameCodec.Instance, frame, frame.ToJson()), iter: GeneratedFrames);

    [Fact]
    public void MessagePack_decoder_refuses_any_bad_text_and_accepts_only_what_every_encoder_and_argument_reader_can_take() =>
        Envelopes.Sample(frame => RefusesBadText(MessagePackFrameCodec.Instance, frame, frame.ToMsgPack()), iter: GeneratedFrames);

    [Fact]
    public void Json_decoder_refuses_every_envelope_with_a_key_it_reads_given_twice() =>
        WithARepeatedKey(["type", "room", "id", "enc", "payload"]).Sample(frame => Assert.Null(JsonFrameCodec.Instance.Decode(frame.ToJson(), out _)), iter: GeneratedFrames);

    [Fact]
    public void MessagePack_decoder_refuses_every_envelope_with_a_key_it_reads_given_twice() =>
        WithARepeatedKey(["type", "room", "id", "payload"]).Sample(frame => Assert.Null(MessagePackFrameCodec.Instance.Decode(frame.ToMsgPack(), out _)), iter: GeneratedFrames);

    /// <summary>A generated envelope with one more entry, anywhere in it, under a key it already has.</summary>
    private static Gen<RawValue> WithARepeatedKey(string[] keys) =>
        Gen.Select(Envelopes, Values, Gen.Int[0, 100], Gen.Int[0, 100], (frame, value, which, where) =>
        {
            var entries = ((RawValue.Map)frame).Entries.ToList();
            var known = entries.Where(e => e.Key is RawValue.Text t && keys.Contains(Encoding.UTF8.GetString(t.Bytes))).ToList();
            var repeated = known[which % known.Count].Key;
            entries.Insert(where % (entries.Count + 1), (repeated, value));
            return (RawValue)new RawValue.Map([.. entries]);
        });

    /// <summary>A frame with bad text anywhere (a key, an unknown field, a payload at depth) is refused, never altered.</summary>
    private static void RefusesBadText(IFrameCodec codec, RawValue frame, byte[] bytes)
    {
        if (frame.HasInvalidText())
        {
            Assert.Null(codec.Decode(bytes, out _));
        }

        DecodesOrRefuses(codec, bytes);
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// The frame decodes or is refused with a message; a decoded frame holds only Unicode strings, every JSON read a
    /// handler could make of its payload works, and both formats encode it as a stored message without a fallback.
    /// </summary>
    private static void DecodesOrRefuses(IFrameCodec codec, byte[] frame)
    {
        var decoded = codec.Decode(frame, out var error);
        if (decoded is null)
        {
            Assert.False(string.IsNullOrEmpty(error.Message));
            return;
        }

        foreach (var field in new[] { decoded.Type, decoded.Room, decoded.Id })
        {
            _ = field is null ? 0 : StrictUtf8.GetByteCount(field); // throws on a lone surrogate
        }

        if (decoded.PayloadKind == PayloadKind.Json)
        {
            Assert.True(PayloadTranscoder.IsValidJson(decoded.Payload));
            using var document = JsonDocument.Parse(decoded.Payload);
            ReadEverything(document.RootElement);
        }
        else if (decoded.PayloadKind == PayloadKind.MessagePack)
        {
            // Stored as sent: it passes the stored check, and its JSON rendering (JSON members, handlers' arguments) works.
            Assert.True(PayloadTranscoder.IsValidMessagePack(decoded.Payload));
            var rendered = PayloadTranscoder.MessagePackToJson(decoded.Payload);
            Assert.True(PayloadTranscoder.IsValidJson(rendered));
            using var document = JsonDocument.Parse(rendered);
            ReadEverything(document.RootElement);
        }

        var message = new RoomMessage
        {
            Room = "fz.a",
            Type = "chat.message",
            Id = decoded.Id,
            Seq = 1,
            Timestamp = 1,
            PayloadKind = decoded.PayloadKind,
            Payload = decoded.Payload,
        };
        Assert.True(UnicodeText.IsUtf8(JsonFrameCodec.Instance.EncodeMessage(message)));
        _ = MessagePackFrameCodec.Instance.EncodeMessage(message);
    }

    /// <summary>Every read a handler can make of a JSON element: names, strings, raw text.</summary>
    private static void ReadEverything(JsonElement element)
    {
        _ = element.GetRawText();
        switch (element.ValueKind)
        {
            case JsonValueKind.Object:
                foreach (var property in element.EnumerateObject())
                {
                    _ = property.Name;
                    ReadEverything(property.Value);
                }

                break;
            case JsonValueKind.Array:
                foreach (var item in element.EnumerateArray())
                {
                    ReadEverything(item);
                }

                break;
            case JsonValueKind.String:
                _ = element.GetString();
                break;
        }
    }
}

/// <summary>
/// The fuzzed frames over live sockets, HTTP publish and a backend's NATS publish. Runs in the non-parallel
/// collection: the managed-heap check measures the whole test process, so no other test may run beside it.
/// </summary>
[Collection(Integration.MetricsCollection.Name)]
public sealed class LiveFuzzTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    // Cases: frames per round (3 rounds per subprotocol), HTTP bodies, backend messages.
    private const int FramesPerRound = 2000;
    private const int HttpBodies = 400;
    private const int BackendMessages = 300;

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task The_worker_survives_a_stream_of_fuzzed_frames_answers_empty_ones_and_keeps_serving_others(string subprotocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var json = subprotocol == Subprotocols.Json;
        // JSON frames that are UTF-8 go as text or binary at random; the others as binary (the WebSocket layer
        // closes a text frame that is not UTF-8 with 1007), so every frame reaches the decoder.
        var frames = Gen.Select(FuzzTests.AllFrames(json), Gen.Bool, (frame, binary) =>
                (Frame: frame, Type: !json || binary || !Utf8.IsValid(frame) ? WebSocketMessageType.Binary : WebSocketMessageType.Text))
            .Array[FramesPerRound].Single();
        var room = Names.Room("fz");
        await using var bystander = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await bystander.JoinAndWaitAsync(room);
        // Members of the room the generated publishes go to: each must be able to read everything stored there.
        await using var jsonMember = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        await using var packMember = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await jsonMember.JoinAndWaitAsync("fz.a");
        await packMember.JoinAndWaitAsync("fz.a");

        long? baseline = null;
        for (var round = 0; round < 3; round++)
        {
            await using var fuzzer = await TestClient.ConnectAsync(worker.WebSocketUrl, subprotocol);
            foreach (var (frame, type) in frames)
            {
                if (fuzzer.Closed.IsCompleted)
                {
                    break;
                }

                try
                {
                    await fuzzer.SendRawAsync(frame, type);
                }
                catch (WebSocketException)
                {
                    break; // closed by the server: checked below
                }
            }

            // Whatever the worker did, it was documented: still serving this connection, or closed with a documented code.
            var alive = false;
            try
            {
                await fuzzer.PublishAsync(room, new { after = round }, id: $"alive-{round}");
                await fuzzer.WaitForAsync(f => f.Type == MessageTypes.Ack && f.Id == $"alive-{round}", TimeSpan.FromSeconds(20));
                alive = true;
            }
            catch (Exception) when (fuzzer.Socket.State != WebSocketState.Open || fuzzer.Closed.IsCompleted)
            {
            }

            if (alive)
            {
                // Every empty or blank message is answered (bad_frame comes from the receive loop, in order, so all of
                // the earlier frames' have been sent before the ack above).
                var blanks = Gen.Select(Gen.OneOf(""u8.ToArray(), " "u8.ToArray(), "\r\n\t "u8.ToArray()), Gen.Bool).Array[10].Single();
                foreach (var (blank, binary) in blanks)
                {
                    await fuzzer.SendRawAsync(blank, binary ? WebSocketMessageType.Binary : WebSocketMessageType.Text);
                }

                await fuzzer.PublishAsync(Names.Room("probe"), "probe", id: $"probe-{round}");
                var answers = new List<Frame>();
                while (answers.LastOrDefault() is not { Type: MessageTypes.Ack } last || last.Id != $"probe-{round}")
                {
                    answers.Add(await fuzzer.NextAsync(TimeSpan.FromSeconds(20)));
                }

                Assert.Equal(blanks.Length, answers.Count(f => f.ErrorCode == ErrorCodes.BadFrame));
            }
            else
            {
                var code = (int?)await fuzzer.Closed.WaitAsync(TimeSpan.FromSeconds(10));
                Assert.True(code is CloseCodes.MessageTooBig or CloseCodes.SlowConsumer,
                    $"closed with {code?.ToString() ?? "no close frame"}: {fuzzer.Socket.CloseStatusDescription}");
            }

            // The bystander is served throughout, and the members of the fuzzed room could read every frame.
            await bystander.PublishAsync(room, new { round }, id: $"b-{round}");
            await bystander.WaitForAsync(f => f.Type == "chat.message" && f.Json["payload"]?["round"]?.GetValue<int>() == round, TimeSpan.FromSeconds(20));
            await AssertStillReadingAsync(jsonMember, packMember);

            // Memory stays flat across rounds (the first round warms up caches and pools).
            await Task.Delay(200);
            var now = GC.GetTotalMemory(forceFullCollection: true);
            baseline ??= now;
            Assert.True(now - baseline < 32L * 1024 * 1024, $"round {round}: managed heap grew from {baseline} to {now} bytes");
        }

        await AssertMetricLabelsAreBoundedAsync(worker);
    }

    [Fact]
    public async Task Fuzzed_http_publishes_are_stored_only_when_valid_and_every_member_reads_what_was_stored()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("fzh");
        var (jsonMember, packMember, sse) = await MembersAsync(worker, room);
        await using var _ = jsonMember;
        await using var __ = packMember;
        await using var ___ = sse;

        var bodies = Gen.Frequency(
                (1, FuzzTests.Frames(FuzzTests.JsonSeeds)),
                (1, FuzzTests.Envelopes.Select(e => WithRoom(e, room).ToJson())),
                (2, FuzzTests.Publishes.Select(e => WithRoom(e, room).ToJson())))
            .Array[HttpBodies].Single();
        var stored = 0;
        foreach (var body in bodies)
        {
            using var content = new ByteArrayContent(body);
            content.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("application/json");
            using var response = await Http.PostAsync(new Uri(worker.HttpUrl, $"/api/rooms/{room}/messages"), content);
            // Accepted or refused with a reason; never a server error.
            Assert.True(response.StatusCode is HttpStatusCode.OK or HttpStatusCode.BadRequest, $"{response.StatusCode} for {Convert.ToHexString(body)}");
            if (response.StatusCode == HttpStatusCode.OK)
            {
                // A retried id (the generators reuse a few) is answered as a duplicate and not stored again.
                var answer = System.Text.Json.Nodes.JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
                stored += answer["duplicate"]!.GetValue<bool>() ? 0 : 1;
            }
        }

        Assert.True(stored > 20, $"only {stored} of {bodies.Length} bodies were valid publishes");
        await AssertEveryMemberReadsAsync(worker, room, stored, jsonMember, packMember, sse);
        await AssertMetricLabelsAreBoundedAsync(worker);
    }

    [Fact]
    public async Task Fuzzed_backend_messages_reach_every_member_in_a_form_it_can_read_and_resume()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("fzb");
        var (jsonMember, packMember, sse) = await MembersAsync(worker, room);
        await using var _ = jsonMember;
        await using var __ = packMember;
        await using var ___ = sse;

        // Bodies: generated JSON (often with bad text at some depth), mutated frames, raw bytes; headers: any
        // content type (JSON claims included), any type, sender and id a backend could write.
        var headerText = Gen.Frequency((3, Gen.String[Gen.Char['!', '~'], 0, 20]), (1, Gen.OneOf("chat.message", "room.join", "welcome", "", "a..b")));
        var messages = Gen.Select(
                Gen.Frequency((3, FuzzTests.Values.Select(v => v.ToJson())), (1, FuzzTests.Frames(FuzzTests.JsonSeeds)), (1, Gen.Byte.Array[0, 64])),
                Gen.OneOf<string?>(null, "application/json", "application/json; charset=utf-8", "APPLICATION/JSON", "application/octet-stream", "text/plain"),
                headerText, headerText, headerText)
            .Array[BackendMessages].Single();
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        foreach (var (body, contentType, type, from, id) in messages)
        {
            var headers = new NatsHeaders { [NatsSubjects.TypeHeader] = type, [NatsSubjects.FromHeader] = from, [NatsSubjects.IdHeader] = id };
            if (contentType is not null)
            {
                headers[NatsSubjects.ContentTypeHeader] = contentType;
            }

            var ack = await js.PublishAsync($"rooms.{room}", body, headers: headers);
            ack.EnsureSuccess();
        }

        await AssertEveryMemberReadsAsync(worker, room, messages.Length, jsonMember, packMember, sse);
        await AssertMetricLabelsAreBoundedAsync(worker);
    }

    /// <summary>
    /// Every label of every Bridge series on <c>/metrics</c> has a value from its fixed, documented set
    /// (docs/operations.md): whatever the fuzzed clients and backends sent, they cannot create new series.
    /// </summary>
    private static readonly string[] TokenReasons =
        ["missing", "malformed", "signature", "expired", "not_yet_valid", "audience", "issuer", "algorithm", "claims", "subject", "origin", "invalid", "banned"];

    private static async Task AssertMetricLabelsAreBoundedAsync(WorkerHost worker)
    {
        var allowed = new Dictionary<string, string[]>
        {
            ["transport"] = ["websocket", "sse", "poll", "http"],
            ["code"] = [.. new[] { CloseCodes.Normal, CloseCodes.InvalidPayload, CloseCodes.MessageTooBig, CloseCodes.InternalError, CloseCodes.ServiceRestart, CloseCodes.TokenExpired, CloseCodes.Forbidden, CloseCodes.SlowConsumer, CloseCodes.Disconnected }.Select(c => c.ToString(System.Globalization.CultureInfo.InvariantCulture))],
            ["reason"] = [.. TokenReasons, .. TokenReasons.Select(r => "api_" + r), "api_key", "api_not_admin"],
            ["limit"] = ["messages", "user_connections", "ip_connections", "worker_connections", "api"],
            // The backend API's requests (docs/operations.md).
            ["op"] = [.. Bridge.Worker.Backend.ApiDispatcher.Operations, "unknown"],
            ["via"] = ["api_key", "admin_token", "nats"],
            ["status"] = ["200", "400", "404", "413", "429", "503"],
            ["truncated"] = ["true", "false"],
            ["format"] = ["json", "msgpack", "all"],
            ["outcome"] = ["binary", "skipped"],
        };
        string[] scope = ["otel_scope_name", "otel_scope_version", "otel_scope_schema_url", "le"];
        using var http = new HttpClient { BaseAddress = worker.HttpUrl, Timeout = TimeSpan.FromSeconds(10) };
        var series = await MetricsScrape.SeriesAsync(http, "bridge_");
        foreach (var (line, labels) in series)
        {
            foreach (var (key, value) in labels)
            {
                Assert.True(scope.Contains(key) || (allowed.TryGetValue(key, out var values) && values.Contains(value)), $"label {key}=\"{value}\" in {line}");
            }
        }

        Assert.True(series.Count > 10, $"only {series.Count} series on /metrics");
    }

    /// <summary>A JSON and a MessagePack WebSocket member and an SSE stream in <paramref name="room"/>.</summary>
    private static async Task<(TestClient Json, TestClient Pack, SseClient Sse)> MembersAsync(WorkerHost worker, string room)
    {
        var json = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json);
        var pack = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        var sse = await SseClient.ConnectAsync(worker.HttpUrl, room);
        await json.JoinAndWaitAsync(room);
        await pack.JoinAndWaitAsync(room);
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        return (json, pack, sse);
    }

    /// <summary>
    /// Each member received exactly <paramref name="count"/> room messages, in seq order, each one parsed by its
    /// client (a frame that is not UTF-8 JSON, or not MessagePack, fails the client's read loop); then a resume from
    /// 0 replays them all in both formats, and room.sync reads the latest.
    /// </summary>
    private static async Task AssertEveryMemberReadsAsync(WorkerHost worker, string room, int count, TestClient json, TestClient pack, SseClient sse)
    {
        static bool IsMessage(Frame f) => f.Seq > 0 && f.Type is not (MessageTypes.RoomJoined or MessageTypes.Ack);
        foreach (var member in new[] { json, pack })
        {
            var received = await member.CollectAsync(count, IsMessage, TimeSpan.FromSeconds(60));
            Assert.True(received.Zip(received.Skip(1)).All(p => p.First.Seq < p.Second.Seq));
        }

        var events = await sse.CollectAsync(count, e => e.Id is not null && e.Event != MessageTypes.RoomJoined, TimeSpan.FromSeconds(60));
        Assert.All(events, e => Assert.Equal(room, e.Json["room"]!.GetValue<string>()));

        foreach (var protocol in new[] { Subprotocols.Json, Subprotocols.MessagePack })
        {
            await using var resumer = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
            await resumer.SendAsync(new() { ["type"] = MessageTypes.RoomJoin, ["room"] = room, ["payload"] = new Dictionary<string, object?> { ["since"] = 0 } });
            var joined = await resumer.WaitForAsync(f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error, TimeSpan.FromSeconds(60));
            Assert.Equal(MessageTypes.RoomJoined, joined.Type);
            Assert.Equal(count, joined.Payload!["replayed"]!.GetValue<int>());
            await resumer.SendAsync(new() { ["type"] = MessageTypes.RoomSync, ["room"] = room, ["payload"] = new Dictionary<string, object?> { ["limit"] = 100 } });
            var state = await resumer.WaitForAsync(f => f.Type is MessageTypes.RoomState or MessageTypes.Error, TimeSpan.FromSeconds(30));
            Assert.Equal(Math.Min(count, 100), state.Payload!["messages"]!.AsArray().Count);
        }

        await AssertStillReadingAsync(json, pack);
    }

    /// <summary>Each member's connection is open and its read loop has parsed every frame so far.</summary>
    private static async Task AssertStillReadingAsync(params TestClient[] members)
    {
        foreach (var member in members)
        {
            var room = Names.Room("alive");
            await member.JoinAndWaitAsync(room);
            Assert.False(member.Closed.IsCompleted, $"a member was disconnected: {member.Socket.CloseStatus}");
        }
    }

    /// <summary>The envelope with its generated room <c>fz.a</c> replaced by <paramref name="room"/> (other rooms stay).</summary>
    private static RawValue WithRoom(RawValue envelope, string room) => envelope is RawValue.Map map
        ? new RawValue.Map([.. map.Entries.Select(e => e.Value is RawValue.Text t && t.Bytes.AsSpan().SequenceEqual("fz.a"u8) ? (e.Key, S(room)) : e)])
        : envelope;
}
