using Bridge.Contracts;
using System.Buffers;
using System.Text;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Protocol;
using MessagePack;
using static Bridge.Tests.Infrastructure.Raw;

namespace Bridge.Tests.Unit;

/// <summary>The codecs are the edge: a string that is not Unicode text, anywhere in a frame, never gets past them.</summary>
public sealed class UnicodeTextTests
{
    private static RawValue Envelope(RawValue payload, string type = "chat.message") =>
        M(("type", S(type)), ("room", S("r")), ("id", S("u1")), ("payload", payload));

    /// <summary>Each place a string can be, holding <paramref name="text"/>.</summary>
    private static IEnumerable<(string Where, RawValue Frame)> Placements(RawValue text) =>
    [
        ("type", M(("type", text), ("room", S("r")))),
        ("room", M(("type", S("chat.message")), ("room", text))),
        ("id", M(("type", S("chat.message")), ("room", S("r")), ("id", text))),
        ("payload", Envelope(text)),
        ("payload, depth 10", Envelope(Enumerable.Range(0, 10).Aggregate(text, (v, i) => i % 2 == 0 ? L(N(i), v) : M(("k", v))))),
        ("payload key", Envelope(M(("a", MK(text, N(1)))))),
        ("unknown key", M(("type", S("chat.message")), ("room", S("r")), ("x", L(M(("y", text)))))),
        ("envelope key", new RawValue.Map([(S("type"), S("chat.message")), (S("room"), S("r")), (text, N(1))])),
        ("join argument", M(("type", S("room.join")), ("payload", M(("rooms", L(M(("room", text)), M(("room", S("b"))))))))),
    ];

    public static TheoryData<string, byte[]> InvalidTexts()
    {
        var data = new TheoryData<string, byte[]>();
        foreach (var bad in InvalidUtf8)
        {
            data.Add(Convert.ToHexString(bad), bad);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(InvalidTexts))]
    public void Both_decoders_refuse_bytes_that_are_not_utf8_in_any_string_of_a_frame(string name, byte[] bad)
    {
        _ = name;
        foreach (var (where, frame) in Placements(Bad("a", bad, "b")))
        {
            Assert.True(JsonFrameCodec.Instance.Decode(frame.ToJson(), out var error) is null, $"JSON, {where}");
            Assert.False(string.IsNullOrEmpty(error.Message));
            Assert.True(MessagePackFrameCodec.Instance.Decode(frame.ToMsgPack(), out error) is null, $"MessagePack, {where}");
            Assert.False(string.IsNullOrEmpty(error.Message));
        }
    }

    [Theory]
    [InlineData("\\ud800")]
    [InlineData("\\udfff")]
    [InlineData("\\udc00\\ud800")]
    [InlineData("\\ud800x")]
    [InlineData("\\ud800\\u0041")]
    public void The_json_decoder_refuses_escapes_that_spell_a_lone_surrogate_in_any_string_of_a_frame(string escape)
    {
        foreach (var (where, frame) in Placements(new RawValue.Literal($"\"a{escape}b\"", S("unused"))))
        {
            Assert.True(JsonFrameCodec.Instance.Decode(frame.ToJson(), out _) is null, $"{escape} in {where}");
        }
    }

    [Theory]
    [InlineData("\"caf\u00e9 \u6f22\u5b57 \U0001F600\"")]
    [InlineData("\"\\ud83d\\ude00 \\u00e9 \\\\u \\n \\\" \\u0000\"")]
    [InlineData("\"\\\\ud800\"")] // an escaped backslash, then the text "ud800": no escape at all
    public void Unicode_text_raw_or_escaped_passes_and_is_stored_as_sent(string json)
    {
        var payload = "{\"s\":" + json + "," + json + ":1}";
        var frame = Encoding.UTF8.GetBytes("{\"type\":\"chat.message\",\"room\":\"r\",\"payload\":" + payload + "}");
        var decoded = JsonFrameCodec.Instance.Decode(frame, out var error);
        Assert.True(decoded is not null, error.Message);
        Assert.True(PayloadTranscoder.IsValidJson(decoded.Payload));
        Assert.Equal(payload, Encoding.UTF8.GetString(decoded.Payload.Span));
    }

    [Fact]
    public void A_long_escaped_string_is_checked_whole()
    {
        // Longer than the stack scratch buffer: the check rents one.
        var good = Encoding.UTF8.GetBytes($"\"{string.Concat(Enumerable.Repeat("\\u00e9", 2000))}\"");
        var bad = Encoding.UTF8.GetBytes($"\"{string.Concat(Enumerable.Repeat("\\u00e9", 2000))}\\ud800\"");
        Assert.True(UnicodeText.HasOnlyUnicodeStrings(good));
        Assert.True(PayloadTranscoder.IsValidJson(good));
        Assert.False(UnicodeText.HasOnlyUnicodeStrings(bad));
        Assert.False(PayloadTranscoder.IsValidJson(bad));
    }

    [Fact]
    public void A_msgpack_str_of_valid_multibyte_utf8_passes_and_renders_as_the_same_json_string()
    {
        var frame = Envelope(M(("s", S("caf\u00e9 \U0001F600")), ("caf\u00e9", N(1)))).ToMsgPack();
        var decoded = MessagePackFrameCodec.Instance.Decode(frame, out var error);
        Assert.True(decoded is not null, error.Message);
        var json = System.Text.Json.Nodes.JsonNode.Parse(PayloadTranscoder.MessagePackToJson(decoded.Payload))!;
        Assert.Equal("caf\u00e9 \U0001F600", json["s"]!.GetValue<string>());
        Assert.Equal(1, json["caf\u00e9"]!.GetValue<int>());
    }

    [Fact]
    public void Both_decoders_refuse_a_payload_name_twice_in_one_object_and_numbers_beyond_float64()
    {
        foreach (var payload in new[] { M(("a", N(1)), ("a", N(2))), L(N(1), M(("k", Null), ("j", Null), ("k", Null))) })
        {
            Assert.Null(JsonFrameCodec.Instance.Decode(Envelope(payload).ToJson(), out var error));
            Assert.Contains("duplicate", error.Message, StringComparison.OrdinalIgnoreCase);
            Assert.Null(MessagePackFrameCodec.Instance.Decode(Envelope(payload).ToMsgPack(), out error));
            Assert.Contains("duplicate", error.Message, StringComparison.OrdinalIgnoreCase);
        }

        Assert.Null(JsonFrameCodec.Instance.Decode(Envelope(new RawValue.Literal("""{"a":1,"\u0061":2}""", Null)).ToJson(), out _));
        foreach (var number in new[] { "1e400", "-1e400", "1E+309", "1" + new string('0', 400) })
        {
            Assert.Null(JsonFrameCodec.Instance.Decode(Envelope(L(new RawValue.Literal(number, Null))).ToJson(), out var error));
            Assert.Equal(PayloadTranscoder.NumberOutOfRange, error.Message);
            Assert.False(PayloadTranscoder.IsValidJson(Encoding.ASCII.GetBytes(number)));
        }

        // The edges of the range, and what only loses precision, pass.
        foreach (var number in new[] { "1e308", "-1.7976931348623157e308", "1e-400", "18446744073709551616", "1" + new string('0', 300) })
        {
            Assert.NotNull(JsonFrameCodec.Instance.Decode(Envelope(L(new RawValue.Literal(number, Null))).ToJson(), out var error));
        }
    }

    [Fact]
    public void A_name_repeated_in_another_object_passes_and_one_repeated_past_the_first_32_names_is_refused()
    {
        var many = string.Join(",", Enumerable.Range(0, 40).Select(n => $"\"n{n}\":{n}"));
        foreach (var json in new[] { """{"a":{"a":1,"b":2},"b":3}""", """[{"a":1},{"a":2}]""", """{"x":[{"k":1},{"k":2}],"k":3}""", $"{{{many}}}" })
        {
            Assert.True(JsonFrameCodec.Instance.Decode(Envelope(new RawValue.Literal(json, Null)).ToJson(), out var error) is not null, json + ": " + error.Message);
        }

        foreach (var json in new[] { $"{{{many},\"n3\":0}}", $"{{{many},\"n39\":0}}", """{"a":{"b":1,"c":2,"b":3}}""" })
        {
            Assert.Null(JsonFrameCodec.Instance.Decode(Envelope(new RawValue.Literal(json, Null)).ToJson(), out var error));
            Assert.Contains("duplicate", error.Message, StringComparison.OrdinalIgnoreCase);
        }
    }

    [Theory]
    [MemberData(nameof(InvalidTexts))]
    public void A_stored_body_that_is_not_unicode_json_is_not_json(string name, byte[] bad)
    {
        _ = name;
        Assert.False(PayloadTranscoder.IsValidJson(M(("s", Bad("a", bad))).ToJson()));
        Assert.False(PayloadTranscoder.IsValidJson(L(N(1), L(Bad("", bad))).ToJson()));
        Assert.False(PayloadTranscoder.IsValidJson(MK(Bad("k", bad), N(1)).ToJson()));
    }

    [Theory]
    [MemberData(nameof(InvalidTexts))]
    public void A_msgpack_str_that_is_not_utf8_is_refused_whether_it_lies_in_one_buffer_or_is_split(string name, byte[] bad)
    {
        _ = name;
        var str = Bad("ab", bad).ToMsgPack();
        // Unsplit (the path every frame and stored body takes: the str read where it lies), then split at every byte.
        Assert.Throws<FormatException>(() => SkipThenRead(new ReadOnlySequence<byte>(str), read: false));
        Assert.Throws<FormatException>(() => SkipThenRead(new ReadOnlySequence<byte>(str), read: true));
        for (var at = 1; at < str.Length; at++)
        {
            Assert.Throws<FormatException>(() => SkipThenRead(Segment.Split(str, at), read: false));
            Assert.Throws<FormatException>(() => SkipThenRead(Segment.Split(str, at), read: true));
        }
    }

    [Fact]
    public void A_msgpack_str_read_or_skipped_leaves_the_reader_at_the_next_value_in_one_buffer_or_split()
    {
        const string text = "héllo wörld ✓";
        byte[] bytes = [.. S(text).ToMsgPack(), .. N(42).ToMsgPack()];
        Assert.Equal((text, 42), SkipThenRead(new ReadOnlySequence<byte>(bytes), read: true));
        Assert.Equal((null, 42), SkipThenRead(new ReadOnlySequence<byte>(bytes), read: false));
        for (var at = 1; at < bytes.Length; at++)
        {
            Assert.Equal((text, 42), SkipThenRead(Segment.Split(bytes, at), read: true));
            Assert.Equal((null, 42), SkipThenRead(Segment.Split(bytes, at), read: false));
        }
    }

    // Reads (or skips) the first value as a str with UnicodeText, then the int after it with MessagePack's own reader.
    private static (string? Text, int Next) SkipThenRead(ReadOnlySequence<byte> input, bool read)
    {
        var reader = new MessagePackReader(input);
        string? text = null;
        if (read)
        {
            text = UnicodeText.ReadString(ref reader);
        }
        else
        {
            UnicodeText.SkipString(ref reader);
        }

        return (text, reader.End ? -1 : reader.ReadInt32());
    }
}
