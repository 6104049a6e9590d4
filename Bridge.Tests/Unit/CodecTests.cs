using System.Text;
using Bridge.Contracts;
using CsCheck;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using MessagePack;

namespace Bridge.Tests.Unit;

public sealed class CodecTests
{
    private static string NestedJson(int depth) => new string('[', depth) + "1" + new string(']', depth);

    private static byte[] NestedMsgPack(int depth) => [.. Enumerable.Repeat((byte)0x91, depth), 0x01];

    private static byte[] MsgPackPublish(byte[] payload) =>
        [.. Convert.FromHexString("83a474797065ac636861742e6d657373616765a4726f6f6da26f6ba77061796c6f6164"), .. payload];

    [Fact]
    public void Payloads_may_nest_exactly_the_documented_depth_in_both_formats_and_keep_their_encoding_when_stored()
    {
        var max = PayloadTranscoder.MaxDepth;
        var ok = JsonFrameCodec.Instance.Decode(Encoding.UTF8.GetBytes($"{{\"type\":\"a\",\"room\":\"r\",\"payload\":{NestedJson(max)}}}"), out _);
        Assert.NotNull(ok);
        Assert.True(PayloadTranscoder.IsValidJson(ok.Payload));
        Assert.Null(JsonFrameCodec.Instance.Decode(Encoding.UTF8.GetBytes($"{{\"type\":\"a\",\"room\":\"r\",\"payload\":{NestedJson(max + 1)}}}"), out _));

        var okPack = MessagePackFrameCodec.Instance.Decode(MsgPackPublish(NestedMsgPack(max)), out _);
        Assert.NotNull(okPack);
        Assert.Equal(PayloadKind.MessagePack, okPack.PayloadKind);
        Assert.Equal(NestedMsgPack(max), okPack.Payload.ToArray());
        Assert.True(PayloadTranscoder.IsValidMessagePack(okPack.Payload));
        Assert.Equal(NestedJson(max), Encoding.UTF8.GetString(PayloadTranscoder.MessagePackToJson(okPack.Payload)));
        Assert.Null(MessagePackFrameCodec.Instance.Decode(MsgPackPublish(NestedMsgPack(max + 1)), out var error));
        Assert.Contains("deeper", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_room_message_is_encoded_once_per_format_and_both_encodings_carry_the_same_envelope()
    {
        var message = new RoomMessage
        {
            Room = "a.b",
            Type = "chat.message",
            Id = "i1",
            From = "u1",
            Seq = 7,
            Timestamp = 1_700_000_000_000,
            PayloadKind = PayloadKind.Json,
            Payload = """{"text":"hi","n":-3,"big":18446744073709551615,"f":1.5,"l":[true,null]}"""u8.ToArray(),
        };
        var json = message.GetFrame(JsonFrameCodec.Instance);
        Assert.Same(json, message.GetFrame(JsonFrameCodec.Instance));
        var pack = message.GetFrame(MessagePackFrameCodec.Instance);
        Assert.Same(pack, message.GetFrame(MessagePackFrameCodec.Instance));

        var fromJson = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        var fromPack = System.Text.Json.Nodes.JsonNode.Parse(MessagePackSerializer.ConvertToJson(pack))!;
        Assert.True(System.Text.Json.Nodes.JsonNode.DeepEquals(fromJson, fromPack), $"{fromJson.ToJsonString()} vs {fromPack.ToJsonString()}");
        Assert.Equal(7UL, fromJson["seq"]!.GetValue<ulong>());
        Assert.Equal(18446744073709551615UL, fromPack["payload"]!["big"]!.GetValue<ulong>());
    }

    [Fact]
    public void Binary_payloads_are_bin_in_msgpack_and_base64_with_enc_in_json()
    {
        byte[] blob = [1, 2, 3, 0, 255];
        var message = new RoomMessage
        {
            Room = "r",
            Type = "raw",
            Seq = 1,
            Timestamp = 0,
            PayloadKind = PayloadKind.Binary,
            Payload = blob,
        };
        var json = System.Text.Json.Nodes.JsonNode.Parse(message.GetFrame(JsonFrameCodec.Instance))!;
        Assert.Equal("base64", json["enc"]!.GetValue<string>());
        Assert.Equal(blob, Convert.FromBase64String(json["payload"]!.GetValue<string>()));
        var map = MessagePackSerializer.Deserialize<Dictionary<string, object>>(message.GetFrame(MessagePackFrameCodec.Instance));
        Assert.Equal(blob, map["payload"]);
        Assert.False(map.ContainsKey("enc"));
    }

    [Fact]
    public void MessagePack_frames_are_the_bytes_of_writing_each_field_in_turn_whatever_type_and_room_came_before()
    {
        // The envelope remembers the last type and room string it wrote (by reference): equal text in a new string, a
        // different string, a long one and one past the memo's length must all come out as plain writes do.
        string[] types = ["chat.message", "load.tick", new string("chat.message".AsSpan()), "é.ü", new string('t', 300), "load.tick"];
        string[] rooms = ["a.b", "a.b", "c", new string("c".AsSpan()), new string('r', 200), "ζ.room"];
        foreach (var message in EveryTypeInEveryRoom(types, rooms))
        {
            Assert.Equal(Convert.ToHexString(PlainMessagePackFrame(message)), Convert.ToHexString(MessagePackFrameCodec.Instance.EncodeMessage(message)));
        }
    }

    [Fact]
    public void Json_frames_are_the_bytes_of_writing_each_field_in_turn_whatever_type_and_room_came_before()
    {
        // The JSON envelope remembers the last type and room string it wrote, escaped (by reference): equal text in a new
        // string, a different string, text the default encoder escapes, a long one must all come out as plain writes do.
        string[] types = ["chat.message", "load.tick", new string("chat.message".AsSpan()), "é.ü", new string('t', 300), "load.tick", "a<b>&'c"];
        string[] rooms = ["a.b", "a.b", "c", new string("c".AsSpan()), new string('r', 300), "ζ.room", "q\"uote"];
        foreach (var message in EveryTypeInEveryRoom(types, rooms))
        {
            Assert.Equal(Encoding.UTF8.GetString(PlainJsonFrame(message)), Encoding.UTF8.GetString(JsonFrameCodec.Instance.EncodeMessage(message)));
        }
    }

    [Fact]
    public void A_live_room_joined_built_into_its_final_array_is_the_bytes_of_writing_each_field_in_turn()
    {
        // A live join's room.joined skips the writers ("Activation, tenth pass"): for rooms the default encoder copies
        // as they are, rooms it escapes (none a valid room name, but the frame must not depend on that) and any seq, the
        // bytes must be those of the writer path (the same frame with a payload that is not the shared one) in both
        // formats, and those of a field-by-field write in JSON.
        string[] rooms = ["a.b", "chat.room-1_x", "Z9", new string('r', 300), "ζ.room", "q\"uote", "a<b>&'c+`\\", "tab\t", "😀.x"];
        ulong[] seqs = [0, 1, 9, 10, 12345, ulong.MaxValue];
        foreach (var room in rooms)
        {
            foreach (var seq in seqs)
            {
                var live = ControlFrames.RoomJoined(room, seq, 0, false);
                Assert.True(ControlFrames.IsLiveJoined(live));
                var general = live with { Payload = new Dictionary<string, object?> { ["replayed"] = 0, ["truncated"] = false } };
                Assert.False(ControlFrames.IsLiveJoined(general));
                var plain = new System.Buffers.ArrayBufferWriter<byte>();
                using (var writer = new System.Text.Json.Utf8JsonWriter(plain))
                {
                    writer.WriteStartObject();
                    writer.WriteString("type", MessageTypes.RoomJoined);
                    writer.WriteString("room", room);
                    writer.WriteNumber("seq", seq);
                    writer.WriteStartObject("payload");
                    writer.WriteNumber("replayed", 0);
                    writer.WriteBoolean("truncated", false);
                    writer.WriteEndObject();
                    writer.WriteEndObject();
                }

                var bytes = Encoding.UTF8.GetString(JsonFrameCodec.Instance.EncodeControl(live));
                Assert.Equal(Encoding.UTF8.GetString(plain.WrittenSpan), bytes);
                Assert.Equal(Encoding.UTF8.GetString(JsonFrameCodec.Instance.EncodeControl(general)), bytes);
                var pack = MessagePackFrameCodec.Instance.EncodeControl(live);
                Assert.Equal(Convert.ToHexString(MessagePackFrameCodec.Instance.EncodeControl(general)), Convert.ToHexString(pack));
                var read = System.Text.Json.Nodes.JsonNode.Parse(MessagePackSerializer.ConvertToJson(pack))!.AsObject();
                Assert.Equal(["type", "room", "seq", "payload"], read.Select(p => p.Key));
                Assert.Equal((MessageTypes.RoomJoined, room, seq), (read["type"]!.GetValue<string>(), read["room"]!.GetValue<string>(), read["seq"]!.GetValue<ulong>()));
                Assert.Equal("""{"replayed":0,"truncated":false}""", read["payload"]!.ToJsonString());
            }
        }

        // Not live: replayed, truncated, latest or an id go through the writer with their own payload.
        Assert.False(ControlFrames.IsLiveJoined(ControlFrames.RoomJoined("a.b", 1, 2, false)));
        Assert.False(ControlFrames.IsLiveJoined(ControlFrames.RoomJoined("a.b", 1, 0, true)));
        Assert.False(ControlFrames.IsLiveJoined(ControlFrames.RoomJoined("a.b", 1, 0, false, latest: 0)));
        Assert.False(ControlFrames.IsLiveJoined(ControlFrames.RoomJoined("a.b", 1, 0, false) with { Id = "x" }));
        Assert.Contains("\"latest\":0", Encoding.UTF8.GetString(JsonFrameCodec.Instance.EncodeControl(ControlFrames.RoomJoined("a.b", 1, 0, false, latest: 0))), StringComparison.Ordinal);
    }

    [Fact]
    public void An_ack_written_straight_into_its_array_is_the_bytes_of_the_ack_frame_in_both_formats()
    {
        // Each publish's ack is written without the frame object ("Ingest, tenth session": JsonFrameCodec.EncodeAck; the
        // MessagePack codec through its frame): for any room text (names are dotted tokens; beyond them, text the
        // default encoder escapes), any id MessageId allows (quote, backslash, '<', '>', '&', '+', '\'', '`' among it)
        // or none, any seq, stored or duplicate, the bytes must be EncodeControl's for ControlFrames.Ack.
        var roomChar = Gen.OneOf(Gen.Char['a', 'z'], Gen.Char['0', '9'], Gen.Const('.'), Gen.Const('-'), Gen.Const('_'), Gen.Char[' ', '\u0400']);
        var room = roomChar.Array[1, 40].Select(c => new string(c));
        var id = Gen.OneOf(Gen.Const((string?)null), Gen.String[Gen.Char['!', '~'], 1, MessageId.MaxLength].Select(s => (string?)s));
        IFrameCodec json = JsonFrameCodec.Instance, pack = MessagePackFrameCodec.Instance;
        Gen.Select(room, id, Gen.ULong, Gen.Bool).Sample((room, id, seq, duplicate) =>
        {
            var frame = ControlFrames.Ack(room, id, seq, duplicate);
            Assert.Equal(Encoding.UTF8.GetString(json.EncodeControl(frame)), Encoding.UTF8.GetString(json.EncodeAck(room, id, seq, duplicate)));
            Assert.Equal(Convert.ToHexString(pack.EncodeControl(frame)), Convert.ToHexString(pack.EncodeAck(room, id, seq, duplicate)));
        }, iter: 3_000);

        Assert.Equal("""{"type":"ack","room":"bench.r7","id":"b-r1-3-42","seq":18446744073709551615,"payload":{"duplicate":false}}""",
            Encoding.UTF8.GetString(json.EncodeAck("bench.r7", "b-r1-3-42", ulong.MaxValue, duplicate: false)));
        Assert.Equal("""{"type":"ack","room":"a.b","id":"\u003Cx\u0022\\\u0027\u002B\u0026\u0060\u003E","seq":0,"payload":{"duplicate":true}}""",
            Encoding.UTF8.GetString(json.EncodeAck("a.b", "<x\"\\'+&`>", 0, duplicate: true)));
        Assert.Equal("""{"type":"ack","room":"a.b","seq":5,"payload":{"duplicate":false}}""", Encoding.UTF8.GetString(json.EncodeAck("a.b", null, 5, duplicate: false)));
    }

    [Fact]
    public void Json_frames_built_into_their_final_array_are_the_bytes_of_writing_each_field_in_turn_for_any_message()
    {
        // Frames of checked JSON payloads (and of none) are built straight into their array ("Replay, tenth pass"):
        // any run of messages, with types and rooms repeated by reference, by equal text in a new string, or new, with
        // text the default encoder escapes, any seq and time, with or without id and from, must come out as the
        // writer's field-by-field bytes. Text reaches past what the reader lets through for types and rooms (dotted
        // ASCII) to what it lets through for a sender (any header text): control characters, 2-, 3- and 4-byte UTF-8
        // (surrogate pairs) and what the default encoder escapes; ids are what MessageId allows (printable ASCII, quote,
        // backslash, '<', '>', '&', '+' among it); payload strings carry the same, escaped or as raw UTF-8.
        var character = Gen.OneOf(
            Gen.Char[' ', '\u0400'].Select(c => c.ToString()),
            Gen.Char['\0', '\u001F'].Select(c => c.ToString()),
            Gen.Const("\u007F"),
            Gen.OneOf(Gen.Char['\u0800', '\uD7FF'], Gen.Char['\uE000', '\uFFFD'], Gen.Const('\u20AC'), Gen.Const('\u2028')).Select(c => c.ToString()),
            Gen.OneOf(Gen.Int[0x10000, 0x10FFFF], Gen.Const(0x1F600)).Select(char.ConvertFromUtf32),
            Gen.Int[0, 7].Select(i => new[] { "\"", "\\", "<", ">", "&", "+", "'", "`" }[i]));
        var anyText = character.Array[0, 12].Select(string.Concat);
        var text = Gen.OneOf(Gen.Const("chat.message"), Gen.Const("load.tick"), Gen.Const("é.ü"), Gen.Const("a<b>&'c\"\\"),
            Gen.Const(new string('t', 300)), anyText.Where(t => t.Length > 0));
        var relaxed = new System.Text.Json.JsonSerializerOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
        var payload = Gen.OneOf(Gen.Const((string?)null), Gen.Const<string?>("""{"text":"hi","n":[1,-2,3.5]}"""), Gen.Const<string?>("0"),
            Gen.Const<string?>("\"\\u00e9\\n\""), Gen.Const<string?>("[]"), Gen.Const<string?>("""{"ζ":{"a":null,"b":true}}"""),
            anyText.Select(s => (string?)System.Text.Json.JsonSerializer.Serialize(s)),
            anyText.Select(s => (string?)System.Text.Json.JsonSerializer.Serialize(new[] { s }, relaxed)));
        var id = Gen.OneOf(Gen.Const((string?)null), Gen.String[Gen.Char['!', '~'], 1, MessageId.MaxLength].Select(s => (string?)s));
        var from = Gen.OneOf(Gen.Const((string?)null), text.Select(s => (string?)s));
        var message = Gen.Select(Gen.Int[0, 3], Gen.Int[0, 3], Gen.Bool, id, from, Gen.ULong, Gen.Long, payload);
        Gen.Select(text.Array[4], text.Array[4], message.Array[1, 12]).Sample((types, rooms, messages) =>
        {
            foreach (var (type, room, copy, id, from, seq, ts, body) in messages)
            {
                var m = CheckedMessage(copy ? new string(types[type].AsSpan()) : types[type], rooms[room], id, from, seq, ts, body);
                Assert.Equal(Encoding.UTF8.GetString(PlainJsonFrame(m)), Encoding.UTF8.GetString(JsonFrameCodec.Instance.EncodeMessage(m)));
            }
        }, iter: 2_000);
    }

    [Fact]
    public void MessagePack_frames_are_the_bytes_of_writing_each_field_in_turn_for_any_message()
    {
        // Any run of messages, types and rooms repeated by reference (the envelope writer's memo), by equal text in a new
        // string, or new; any seq and time (negative too: each integer form's boundaries); with or without id and from,
        // whose str headers cross fixstr, str8 and str16 (and a lone surrogate, which both write as U+FFFD); payloads the
        // transcoding's one pass takes and ones it leaves to the document (an escaped name), must come out as
        // MessagePackWriter's field-by-field bytes (written while a frame built straight into its array was tried:
        // "Replay, fifteenth pass (issue 14): the write side").
        var character = Gen.OneOf(
            Gen.Char[' ', '\u0400'].Select(c => c.ToString()),
            Gen.Char['\0', '\u001F'].Select(c => c.ToString()),
            Gen.OneOf(Gen.Char['\u0800', '\uD7FF'], Gen.Char['\uE000', '\uFFFD']).Select(c => c.ToString()),
            Gen.Int[0x10000, 0x10FFFF].Select(char.ConvertFromUtf32));
        var anyText = character.Array[0, 40].Select(string.Concat);
        var loneSurrogate = Gen.Char['\uD800', '\uDFFF'].Select(c => c.ToString());
        var text = Gen.OneOf(Gen.Const("chat.message"), Gen.Const("load.tick"), Gen.Const("é.ü"), Gen.Const(new string('t', 31)),
            Gen.Const(new string('t', 32)), Gen.Const(new string('t', 255)), Gen.Const(new string('t', 256)), Gen.Const(new string('t', 300)),
            anyText.Where(t => t.Length > 0), Gen.Select(anyText, loneSurrogate, anyText).Select((a, b, c) => a + b + c));
        var integer = Gen.OneOf(Gen.Long, Gen.Long[-40, 300], Gen.OneOf(
            Gen.Const(127L), Gen.Const(128L), Gen.Const(255L), Gen.Const(256L), Gen.Const(65_535L), Gen.Const(65_536L), Gen.Const(4_294_967_295L),
            Gen.Const(4_294_967_296L), Gen.Const(-32L), Gen.Const(-33L), Gen.Const(-128L), Gen.Const(-129L), Gen.Const(-32_768L), Gen.Const(-32_769L),
            Gen.Const((long)int.MinValue), Gen.Const((long)int.MinValue - 1), Gen.Const(long.MinValue), Gen.Const(long.MaxValue)));
        var seq = Gen.OneOf(Gen.ULong, integer.Select(i => (ulong)Math.Abs(i == long.MinValue ? 0 : i)), Gen.Const(ulong.MaxValue));
        var payload = Gen.OneOf(Gen.Const((string?)null), Gen.Const<string?>("""{"sent":0,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"""),
            Gen.Const<string?>("""{"text":"hi","n":[1,-2,3.5,1e300,18446744073709551615,-9223372036854775808]}"""), Gen.Const<string?>("0"),
            Gen.Const<string?>("\"\\u00e9\\n\""), Gen.Const<string?>("[]"), Gen.Const<string?>("""{"ζ":{"a":null,"b":true}}"""),
            Gen.Const<string?>("""{"\u0061":1,"b":[{}]}"""),
            anyText.Select(s => (string?)System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string[]> { ["k"] = [s, s] })));
        var id = Gen.OneOf(Gen.Const((string?)null), Gen.String[Gen.Char['!', '~'], 1, MessageId.MaxLength].Select(s => (string?)s));
        var from = Gen.OneOf(Gen.Const((string?)null), text.Select(s => (string?)s), Gen.Const<string?>(new string('f', 70_000)));
        var message = Gen.Select(Gen.Int[0, 3], Gen.Int[0, 3], Gen.Bool, id, from, seq, integer, payload);
        Gen.Select(text.Array[4], text.Array[4], message.Array[1, 12]).Sample((types, rooms, messages) =>
        {
            foreach (var (type, room, copy, id, from, seq, ts, body) in messages)
            {
                var m = CheckedMessage(copy ? new string(types[type].AsSpan()) : types[type], rooms[room], id, from, seq, ts, body);
                Assert.Equal(Convert.ToHexString(PlainMessagePackFrame(m)), Convert.ToHexString(MessagePackFrameCodec.Instance.EncodeMessage(m)));
            }
        }, iter: 2_000);
    }

    // A room message with a JSON payload checked where it entered (or none), as the frame properties generate them.
    private static RoomMessage CheckedMessage(string type, string room, string? id, string? from, ulong seq, long ts, string? body) => new()
    {
        Type = type,
        Room = room,
        Id = id,
        From = from,
        Seq = seq,
        Timestamp = ts,
        PayloadKind = body is null ? PayloadKind.None : PayloadKind.Json,
        Payload = body is null ? default : Encoding.UTF8.GetBytes(body),
        PayloadChecked = true,
    };

    // A message frame written field by field with Utf8JsonWriter's own writes: the wire bytes of docs/protocol.md §2.
    private static byte[] PlainJsonFrame(RoomMessage message)
    {
        var plain = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new System.Text.Json.Utf8JsonWriter(plain))
        {
            writer.WriteStartObject();
            writer.WriteString("type", message.Type);
            writer.WriteString("room", message.Room);
            if (message.Id is { } id)
            {
                writer.WriteString("id", id);
            }

            writer.WriteNumber("seq", message.Seq);
            writer.WriteNumber("ts", message.Timestamp);
            if (message.From is { } from)
            {
                writer.WriteString("from", from);
            }

            if (message.PayloadKind == PayloadKind.Json)
            {
                writer.WritePropertyName("payload");
                writer.WriteRawValue(message.Payload.Span);
            }

            writer.WriteEndObject();
        }

        return plain.WrittenSpan.ToArray();
    }

    [Fact]
    public void A_json_envelope_written_with_an_encoder_of_its_own_is_escaped_by_that_encoder_even_for_a_type_remembered_before()
    {
        // The remembered escaping is the default encoder's; a writer with another encoder (a client's) gets its own.
        var type = "é.<t>";
        var room = "ζ&room";
        var remembered = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new System.Text.Json.Utf8JsonWriter(remembered))
        {
            EnvelopeWriter.WriteStart(writer, type, room, null);
            writer.WriteEndObject();
        }

        Assert.Equal("""{"type":"\u00E9.\u003Ct\u003E","room":"\u03B6\u0026room"}""", Encoding.UTF8.GetString(remembered.WrittenSpan));
        var relaxed = new System.Buffers.ArrayBufferWriter<byte>();
        using (var writer = new System.Text.Json.Utf8JsonWriter(relaxed, new System.Text.Json.JsonWriterOptions { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            EnvelopeWriter.WriteStart(writer, type, room, null);
            writer.WriteEndObject();
        }

        Assert.Equal("""{"type":"é.<t>","room":"ζ&room"}""", Encoding.UTF8.GetString(relaxed.WrittenSpan));
    }

    [Fact]
    public void A_json_payload_not_checked_where_it_entered_is_checked_as_text_before_it_is_transcoded_to_MessagePack()
    {
        // A string that is not UTF-8 (0xFF): checked where it entered (RoomMessageReader) it would never be JSON; made
        // elsewhere, the MessagePack codec must find it and send the bytes as binary, never as a str.
        var message = new RoomMessage
        {
            Room = "r",
            Type = "t",
            Seq = 1,
            Timestamp = 1,
            PayloadKind = PayloadKind.Json,
            Payload = new byte[] { (byte)'{', (byte)'"', (byte)'a', (byte)'"', (byte)':', (byte)'"', 0xFF, (byte)'"', (byte)'}' },
        };
        var map = MessagePackSerializer.Deserialize<Dictionary<string, object>>(message.GetFrame(MessagePackFrameCodec.Instance));
        Assert.Equal(message.Payload.ToArray(), map["payload"]);
    }

    // Every type in every room, in turn (type after type, each through every room), with and without id, from and a
    // payload checked where it entered.
    private static IEnumerable<RoomMessage> EveryTypeInEveryRoom(string[] types, string[] rooms)
    {
        for (var i = 0; i < types.Length * rooms.Length; i++)
        {
            yield return new RoomMessage
            {
                Room = rooms[i % rooms.Length],
                Type = types[i / rooms.Length],
                Id = i % 2 == 0 ? "id-" + i : null,
                From = i % 3 == 0 ? "u" + i : null,
                Seq = (ulong)i + 1,
                Timestamp = 1_700_000_000_000 + i,
                PayloadKind = PayloadKind.Json,
                Payload = """{"text":"hi","n":[1,-2,3.5]}"""u8.ToArray(),
                PayloadChecked = i % 2 == 0,
            };
        }
    }

    // A message frame written field by field with MessagePackWriter's own string writes: the wire bytes of docs/protocol.md §3.
    private static byte[] PlainMessagePackFrame(RoomMessage message)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        List<(string Key, object Value)> fields = [("type", message.Type), ("room", message.Room)];
        if (message.Id is { } id)
        {
            fields.Add(("id", id));
        }

        fields.AddRange([("seq", message.Seq), ("ts", message.Timestamp)]);
        if (message.From is { } from)
        {
            fields.Add(("from", from));
        }

        var hasPayload = message.PayloadKind != PayloadKind.None;
        writer.WriteMapHeader(fields.Count + (hasPayload ? 1 : 0));
        foreach (var (key, value) in fields)
        {
            writer.Write(key);
            switch (value)
            {
                case string text:
                    writer.Write(text);
                    break;
                case ulong seq:
                    writer.Write(seq);
                    break;
                default:
                    writer.Write((long)value);
                    break;
            }
        }

        if (hasPayload)
        {
            writer.Write("payload");
            PayloadTranscoder.WriteJsonAsMessagePack(message.Payload, ref writer);
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    [Theory]
    [InlineData("{\"type\":\"chat.message\"")]
    [InlineData("""{"type":}""")]
    [InlineData("""{"type":"x","payload":[1,2""")]
    [InlineData("""{"a":1,}""")]
    [InlineData("{")]
    public void Malformed_json_is_refused_with_what_and_where_without_the_json_reader_internals(string frame)
    {
        Assert.Null(JsonFrameCodec.Instance.Decode(Encoding.UTF8.GetBytes(frame), out var error));
        Assert.StartsWith("malformed JSON: ", error.Message, StringComparison.Ordinal);
        Assert.Matches(@"\(line 1, byte \d+\)$", error.Message);
        Assert.DoesNotContain("isFinalBlock", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("LineNumber", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("BytePositionInLine", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("a")]
    [InlineData("chat.lobby")]
    [InlineData("devices.site-1.sensor_42")]
    [InlineData("A.B.C")]
    public void Valid_room_names_are_accepted(string room) => Assert.True(RoomName.IsValid(room));

    [Fact]
    public void Room_names_at_the_limits_are_accepted_and_one_past_them_refused()
    {
        Assert.True(RoomName.IsValid(new string('a', RoomName.MaxLength)));
        Assert.False(RoomName.IsValid(new string('a', RoomName.MaxLength + 1)));
        Assert.True(RoomName.IsValid(string.Join('.', Enumerable.Repeat("a", RoomName.MaxTokens))));
        Assert.False(RoomName.IsValid(string.Join('.', Enumerable.Repeat("a", RoomName.MaxTokens + 1))));
    }
    // One bad value in one field, written in each format: (JSON text of the value, MessagePack bytes of the value).
    public static TheoryData<string, string, string> SameBadInputInBothFormats => new()
    {
        { "type", "5", "05" },
        { "room", "true", "c3" },
        { "id", "[1]", "9101" },
        { "type", "\"%FF%\"", "a1ff" }, // JSON: %FF% stands for the byte 0xFF (below); MessagePack: str 0xFF
        { "room", "\"%FF%\"", "a1ff" },
        { "payload", "{\"k\":\"%FF%\"}", "81a16ba1ff" },
    };

    [Theory]
    [MemberData(nameof(SameBadInputInBothFormats))]
    public void The_same_bad_input_gets_the_same_error_message_in_json_and_in_messagepack(string field, string json, string packHex)
    {
        // Invalid UTF-8 in JSON: %FF% stands for the raw byte 0xFF, put in as a byte (a C# string cannot carry it).
        var jsonOthers = field switch
        {
            "type" => "\"room\":\"r\"",
            "room" => "\"type\":\"chat.message\"",
            _ => "\"type\":\"chat.message\",\"room\":\"r\"",
        };
        var jsonBytes = Encoding.UTF8.GetBytes($"{{{jsonOthers},\"{field}\":{json}}}").ToList();
        var escape = "%FF%"u8.ToArray();
        for (var at = IndexOf(jsonBytes, escape); at >= 0; at = IndexOf(jsonBytes, escape))
        {
            jsonBytes.RemoveRange(at, escape.Length);
            jsonBytes.Insert(at, 0xFF);
        }

        var others = field switch
        {
            "type" => "a4726f6f6da172", // room: "r"
            "room" => "a474797065ac636861742e6d657373616765", // type: "chat.message"
            _ => "a474797065ac636861742e6d657373616765a4726f6f6da172",
        };
        var pack = Convert.FromHexString(
            (field is "type" or "room" ? "82" : "83") + others + Convert.ToHexString(Encoding.UTF8.GetBytes(field)).Insert(0, (0xA0 + field.Length).ToString("x2")) + packHex);

        Assert.Null(JsonFrameCodec.Instance.Decode(jsonBytes.ToArray(), out var fromJson));
        Assert.Null(MessagePackFrameCodec.Instance.Decode(pack, out var fromPack));
        Assert.Equal(fromJson.Message, fromPack.Message);
        Assert.DoesNotContain("malformed", fromPack.Message, StringComparison.Ordinal);
    }

    private static int IndexOf(List<byte> bytes, byte[] part)
    {
        for (var i = 0; i + part.Length <= bytes.Count; i++)
        {
            if (bytes.Skip(i).Take(part.Length).SequenceEqual(part))
            {
                return i;
            }
        }

        return -1;
    }

    [Fact]
    public void An_error_frame_reads_naturally_in_json_with_only_the_escapes_json_needs()
    {
        // Apostrophes, '<', '&', '+' and non-ASCII letters as they are (not \u0027 ...): valid JSON that reads as §4 shows.
        var natural = "the token's signature is not valid; does not grant publishing to 'r.p.x' <a & b + `c`> Zoë";
        var frame = Encoding.UTF8.GetString(JsonFrameCodec.Instance.EncodeControl(ControlFrames.Error(ErrorCodes.Forbidden, natural, "it's", "r.p.x")));
        Assert.Equal($$$"""{"type":"error","room":"r.p.x","payload":{"code":"forbidden","message":"{{{natural}}}","ref":"it's"}}""", frame);

        // What would break JSON (or a line of an SSE event) is still escaped: quotes, backslashes, control characters,
        // U+2028/U+2029; a lone surrogate becomes U+FFFD (no throw). Each reads back as the text written.
        foreach (var (text, escaped) in new[]
                 {
                     ("say \"hi\" \\ it's", "say \\\"hi\\\" \\\\ it's"),
                     ("line\nbreak\ttab\u0001\u007f it's", "line\\nbreak\\ttab\\u0001\\u007F it's"),
                     ("sep\u2028\u2029 it's", "sep\\u2028\\u2029 it's"),
                     ("lone \ud800 it's", "lone \ufffd it's"),
                 })
        {
            var bytes = JsonFrameCodec.Instance.EncodeControl(ControlFrames.Error(ErrorCodes.BadFrame, text, null));
            Assert.Contains($"\"message\":\"{escaped}\"", Encoding.UTF8.GetString(bytes), StringComparison.Ordinal);
            using var parsed = System.Text.Json.JsonDocument.Parse(bytes);
            Assert.Equal(text.Replace("\ud800", "\ufffd", StringComparison.Ordinal), parsed.RootElement.GetProperty("payload").GetProperty("message").GetString());
        }
    }
}
