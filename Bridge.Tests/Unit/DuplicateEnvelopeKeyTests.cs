using Bridge.Tests.Infrastructure;
using Bridge.Worker.Protocol;
using static Bridge.Tests.Infrastructure.Raw;

namespace Bridge.Tests.Unit;

/// <summary>
/// An envelope key the worker reads, given twice, refuses the frame (docs/protocol.md §3): a first-wins reader in
/// front of the worker would otherwise see another type, room, id, enc or payload than what is stored.
/// </summary>
public sealed class DuplicateEnvelopeKeyTests
{
    // A publish every key of which is valid: only the repeat can refuse it.
    private static (string Key, RawValue Value)[] Publish(string key, RawValue first, RawValue second)
    {
        var entries = new List<(string, RawValue)> { ("type", S("chat.message")), ("room", S("demo")), ("id", S("d1")) };
        entries.RemoveAll(e => e.Item1 == key);
        entries.Add((key, first));
        entries.Add(("x", N(1)));
        entries.Add((key, second));
        return [.. entries];
    }

    public static TheoryData<string, string, RawValue, RawValue> Repeats() => new()
    {
        { "json", "type", S("chat.message"), S("x.y") },
        { "json", "room", S("demo"), S("other") },
        { "json", "id", S("dup1"), S("dup2") },
        { "json", "enc", S("base64"), Null },
        { "json", "payload", M(("a", N(1))), N(1) },
        { "json", "payload", BeyondFloat64, N(1) },
        { "msgpack", "type", S("chat.message"), S("x.y") },
        { "msgpack", "room", S("demo"), S("x..y") },
        { "msgpack", "id", S("dup1"), S("dup2") },
        { "msgpack", "payload", M(("a", N(1))), L(N(1)) },
    };

    [Theory]
    [MemberData(nameof(Repeats))]
    public void An_envelope_key_given_twice_is_refused_with_bad_frame_naming_the_key_and_the_id_already_read(string format, string key, RawValue first, RawValue second)
    {
        var frame = M(Publish(key, first, second));
        var decoded = format == "json"
            ? JsonFrameCodec.Instance.Decode(frame.ToJson(), out var error)
            : MessagePackFrameCodec.Instance.Decode(frame.ToMsgPack(), out error);

        Assert.Null(decoded);
        Assert.Equal($"duplicate name: envelope key '{key}' appears twice", error.Message);
        Assert.Equal(key == "id" ? "dup1" : "d1", error.Reference);
    }

    [Fact]
    public void A_json_key_repeated_under_an_escaped_name_is_a_repeat()
    {
        Assert.Null(JsonFrameCodec.Instance.Decode("""{"type":"chat.message","room":"demo","\u0074ype":"x.y"}"""u8, out var error));
        Assert.Equal("duplicate name: envelope key 'type' appears twice", error.Message);
        Assert.Null(error.Reference);
    }

    [Fact]
    public void Unknown_keys_are_ignored_once_each_and_enc_is_an_unknown_key_in_MessagePack()
    {
        var json = JsonFrameCodec.Instance.Decode("""{"type":"chat.message","room":"demo","x":1,"y":2,"seq":1,"ts":2,"from":"z"}"""u8, out _);
        Assert.Equal("chat.message", json?.Type);
        var pack = MessagePackFrameCodec.Instance.Decode(M(("type", S("chat.message")), ("enc", S("a")), ("x", N(1)), ("room", S("demo"))).ToMsgPack(), out _);
        Assert.Equal("demo", pack?.Room);
    }

    [Theory]
    [InlineData("""{"type":"chat.message","id":"d1","x":1,"room":"demo","x":2}""")]
    [InlineData("""{"type":"chat.message","id":"d1","seq":1,"seq":1}""")]
    [InlineData("""{"id":"d1","x":{"a":1},"\u0078":null,"type":"chat.message"}""")]
    public void A_json_unknown_key_twice_is_refused_with_bad_frame(string frame)
    {
        Assert.Null(JsonFrameCodec.Instance.Decode(System.Text.Encoding.UTF8.GetBytes(frame), out var error));
        Assert.Equal(EnvelopeKeySet.UnknownDuplicateMessage, error.Message);
        Assert.Equal("d1", error.Reference);
    }

    [Fact]
    public void An_unknown_key_whose_name_does_not_unescape_is_refused_with_the_frames_id_as_ref()
    {
        // A lone surrogate escape in an unknown key's name, the id after it: refused, and the id still reaches ref.
        var frame = """{"\ud800":1,"type":"chat.message","room":"demo","id":"u1","payload":{}}""";
        Assert.Null(JsonFrameCodec.Instance.Decode(System.Text.Encoding.UTF8.GetBytes(frame), out var error));
        Assert.Equal("u1", error.Reference);
        Assert.Equal(Bridge.Contracts.UnicodeText.LoneSurrogateMessage, error.Message);
    }

    [Fact]
    public void A_msgpack_unknown_key_twice_enc_included_is_refused_with_bad_frame()
    {
        foreach (var key in new[] { "x", "enc" })
        {
            var frame = M(("type", S("chat.message")), ("id", S("d1")), (key, S("a")), ("room", S("demo")), (key, S("b")));
            Assert.Null(MessagePackFrameCodec.Instance.Decode(frame.ToMsgPack(), out var error));
            Assert.Equal(EnvelopeKeySet.UnknownDuplicateMessage, error.Message);
            Assert.Equal("d1", error.Reference);
        }
    }
}
