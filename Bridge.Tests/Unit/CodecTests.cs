using System.Text;
using Bridge.Contracts;
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
}
