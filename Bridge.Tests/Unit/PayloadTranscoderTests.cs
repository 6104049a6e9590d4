using System.Text;
using Bridge.Contracts;

namespace Bridge.Tests.Unit;

/// <summary>The JSON rendering of MessagePack values that have no JSON twin (docs/protocol.md §3).</summary>
public sealed class PayloadTranscoderTests
{
    private static string Render(string hex) => Encoding.UTF8.GetString(PayloadTranscoder.MessagePackToJson(Convert.FromHexString(hex)));

    [Theory]
    [InlineData("d6ff6955b901", "\"2026-01-01T00:00:01Z\"")] // 32-bit: seconds only
    [InlineData("d7ff773594006955b901", "\"2026-01-01T00:00:01.5Z\"")] // 64-bit: 500,000,000 ns, trailing zeros left out
    [InlineData("c70cff075bcd15000000006955b901", "\"2026-01-01T00:00:01.123456789Z\"")] // 96-bit
    [InlineData("c70cff00000000fffffffffffffffe", "\"1969-12-31T23:59:58Z\"")] // 96-bit, before the epoch
    [InlineData("c70cff00000000fffffff000000000", "{\"$ext\":-1,\"$data\":\"AAAAAP////AAAAAA\"}")] // before year 1: no RFC 3339 form
    [InlineData("d40501", "{\"$ext\":5,\"$data\":\"AQ==\"}")] // another extension type
    [InlineData("81a17492c40200ffd6ff6955b901", "{\"t\":[\"AP8=\",\"2026-01-01T00:00:01Z\"]}")] // nested bin and timestamp
    public void Extension_values_and_nested_bin_render_as_documented(string hex, string json) =>
        Assert.Equal(json, Render(hex));

    [Theory]
    [InlineData("d4ff01")] // a 1-byte timestamp
    [InlineData("d7ffffffffff00000000")] // 64-bit with nanoseconds over 10^9
    [InlineData("c70cff3b9aca00000000006955b901")] // 96-bit with exactly 10^9 nanoseconds
    [InlineData("82a16101a16102")] // a key twice
    [InlineData("810102")] // an integer key
    [InlineData("cb7ff8000000000000")] // NaN
    [InlineData("9191")] // truncated
    [InlineData("0101")] // data after the value
    public void A_client_value_without_a_json_form_or_malformed_is_refused_with_a_reason(string hex)
    {
        var problem = PayloadTranscoder.CheckMessagePack(Convert.FromHexString(hex));
        Assert.False(string.IsNullOrEmpty(problem));
    }

    [Fact]
    public void A_stored_value_without_a_json_form_still_passes_the_cheap_stored_check_and_its_rendering_throws()
    {
        var value = Convert.FromHexString("810102"); // {1: 2}
        Assert.True(PayloadTranscoder.IsValidMessagePack(value));
        Assert.Throws<FormatException>(() => PayloadTranscoder.MessagePackToJson(value));
        Assert.False(PayloadTranscoder.IsValidMessagePack(Convert.FromHexString("a2c3"))); // a str that is not UTF-8
        Assert.False(PayloadTranscoder.IsValidMessagePack(Convert.FromHexString("0101")));
        Assert.False(PayloadTranscoder.IsValidMessagePack(ReadOnlyMemory<byte>.Empty));
    }

    [Fact]
    public void Large_maps_are_checked_for_a_key_twice_as_small_ones_are()
    {
        static byte[] Map(int count, bool twice)
        {
            var bytes = new List<byte> { 0xDE, (byte)(count >> 8), (byte)count };
            for (var i = 0; i < count; i++)
            {
                var key = $"k{(twice && i == count - 1 ? 0 : i)}";
                bytes.Add((byte)(0xA0 | key.Length));
                bytes.AddRange(Encoding.ASCII.GetBytes(key));
                bytes.Add(0x01);
            }

            return [.. bytes];
        }

        Assert.Null(PayloadTranscoder.CheckMessagePack(Map(100, twice: false)));
        Assert.Equal(PayloadTranscoder.DuplicateKey, PayloadTranscoder.CheckMessagePack(Map(100, twice: true)));
    }

    [Fact]
    public void The_contracts_readme_example_renders_what_it_says()
    {
        byte[] body = [0x81, 0xA1, 0x74, 0xD6, 0xFF, 0x69, 0x55, 0xB9, 0x01];
        Assert.Null(PayloadTranscoder.CheckMessagePack(body));
        Assert.Equal("{\"t\":\"2026-01-01T00:00:01Z\"}", Encoding.UTF8.GetString(PayloadTranscoder.MessagePackToJson(body)));
    }
}
