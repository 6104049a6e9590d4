using Bridge.Worker.Protocol;

namespace Bridge.Tests.Unit;

/// <summary>The SSE id / poll cursor at the bounds of the unsigned range (issue 12, kind 2).</summary>
public sealed class CursorTests
{
    [Theory]
    [InlineData("0", 0UL)]
    [InlineData("1", 1UL)]
    [InlineData("9223372036854775808", 9223372036854775808UL)] // 2^63
    [InlineData("18446744073709551614", 18446744073709551614UL)]
    [InlineData("18446744073709551615", 18446744073709551615UL)] // 2^64 - 1
    [InlineData("007", 7UL)]
    public void A_single_room_cursor_holds_every_unsigned_64_bit_seq_and_formats_back(string text, ulong seq)
    {
        Assert.True(Cursor.TryParse(text, ["a"], out var positions));
        Assert.Equal(seq, positions["a"]);
        Assert.Equal(seq.ToString(System.Globalization.CultureInfo.InvariantCulture), Cursor.Format(["a"], positions));
    }

    [Theory]
    [InlineData("18446744073709551616")] // 2^64
    [InlineData("99999999999999999999999")]
    [InlineData("-1")]
    [InlineData("+1")]
    [InlineData(" 1")]
    [InlineData("1 ")]
    [InlineData("1e3")]
    [InlineData("1.0")]
    [InlineData("0x10")]
    [InlineData("\u0661")] // an Arabic-Indic digit
    [InlineData("a=18446744073709551616")]
    [InlineData("a=1,b=-1")]
    [InlineData("a=1,=2")]
    public void A_cursor_outside_the_unsigned_range_or_not_decimal_digits_is_refused(string text) =>
        Assert.False(Cursor.TryParse(text, ["a", "b"], out _));

    [Fact]
    public void A_multi_room_cursor_keeps_each_room_at_its_own_bound()
    {
        Assert.True(Cursor.TryParse("a=0,b=18446744073709551615", ["a", "b", "c"], out var positions));
        Assert.Equal((0UL, ulong.MaxValue), (positions["a"], positions["b"]));
        Assert.False(positions.ContainsKey("c"));
        Assert.Equal("a=0,b=18446744073709551615", Cursor.Format(["a", "b", "c"], positions));
    }
}
