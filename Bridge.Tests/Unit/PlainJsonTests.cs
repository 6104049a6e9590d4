using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Security;
using Bridge.Worker.Nats;
using CsCheck;

namespace Bridge.Tests.Unit;

/// <summary>
/// <see cref="PlainJson"/>, the quick pass in front of a stored payload's JSON check: it may say "valid" only where
/// <see cref="PayloadTranscoder.IsValidJson"/> does, for any bytes, and it does say so for the plain JSON backends write.
/// </summary>
public sealed class PlainJsonTests
{
    private static readonly Gen<string> Space = Gen.OneOf("", "", "", " ", "\n", "\r\n\t ");

    private static readonly Gen<string> PlainStrings = Gen.Frequency(
        (4, Gen.Char["a-zA-Z0-9 _./:!#$%&'()*+,;<=>?@[]^`{|}~-"].Array[0, 12].Select(c => "\"" + new string(c) + "\"")),
        (1, Gen.OneOf("caf\u00e9", "\U0001F600", "\u65e5\u672c\u8a9e", "na\u00efve \u00fcber", "\u00a0").Select(t => "\"" + t + "\"")));

    private static readonly Gen<string> PlainNumbers = Gen.OneOf(
        Gen.Long.Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        Gen.Select(Gen.Int[-1000, 1000], Gen.UInt[0, 99999]).Select((i, f) => $"{i}.{f}"),
        Gen.Const("0"), Gen.Const("-0"), Gen.Const("0.0"));

    /// <summary>JSON in the plain form (no escapes, no exponents, at most 6 deep; text in and past ASCII), spaced anyhow.</summary>
    private static readonly Gen<string> PlainValues = Gen.Recursive<string>((depth, values) =>
    {
        var scalars = Gen.Frequency((3, PlainStrings), (3, PlainNumbers), (1, Gen.OneOf("true", "false", "null")));
        return depth >= 6
            ? scalars
            : Gen.Frequency(
                (3, scalars),
                (1, Gen.Select(values, Space).Array[0, 4].Select(items => "[" + string.Join(",", items.Select(x => x.Item2 + x.Item1 + x.Item2)) + "]")),
                (1, Gen.Select(PlainStrings, values, Space).Array[0, 4]
                    .Select(entries => "{" + string.Join(",", entries.Select(e => $"{e.Item3}{e.Item1}{e.Item3}:{e.Item3}{e.Item2}")) + "}")));
    });

    // Bytes that make or break JSON, for mutating a value.
    private static readonly byte[] Alphabet = "{}[]:,\"\\ \t\n\r0123456789-+.eEtrufalsn/x\u0001\u007f"u8.ToArray().Concat(new byte[] { 0x80, 0xC3, 0xA9, 0xFF, 0x00 }).ToArray();

    private static readonly Gen<byte[]> Texts = Gen.Frequency(
        (2, PlainValues.Select(Encoding.UTF8.GetBytes)),
        (1, FuzzTests.Values.Select(v => v.ToJson())));

    /// <summary>A text with one byte replaced, inserted or removed, or cut short.</summary>
    private static readonly Gen<byte[]> Mutated = Gen.Select(Texts, Gen.Int[0, 3], Gen.Int[0, int.MaxValue], Gen.Int[0, Alphabet.Length - 1], (text, op, at, b) =>
    {
        var list = text.ToList();
        var i = list.Count == 0 ? 0 : at % (list.Count + (op == 1 ? 1 : 0));
        switch (op)
        {
            case 0 when list.Count > 0:
                list[i] = Alphabet[b];
                break;
            case 1:
                list.Insert(Math.Min(i, list.Count), Alphabet[b]);
                break;
            case 2 when list.Count > 0:
                list.RemoveAt(i);
                break;
            default:
                list = list.Take(i).ToList();
                break;
        }

        return list.ToArray();
    });

    [Fact]
    public void Whatever_the_bytes_it_says_valid_only_where_the_full_check_does()
    {
        Gen.Frequency((1, Texts), (3, Mutated)).Sample(
            bytes => Assert.True(!PlainJson.IsCertainlyValid(bytes) || PayloadTranscoder.IsValidJson(bytes), Encoding.UTF8.GetString(bytes)),
            iter: 100_000);
    }

    [Fact]
    public void Plain_json_is_recognised_without_the_full_check()
    {
        PlainValues.Sample(
            text =>
            {
                var bytes = Encoding.UTF8.GetBytes(text);
                Assert.True(PayloadTranscoder.IsValidJson(bytes), text);
                Assert.True(PlainJson.IsCertainlyValid(bytes), text);
            },
            iter: 20_000);
    }

    [Theory]
    [InlineData("{\"sent\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}")] // the replay benchmark's payload
    [InlineData(" [ 1 , -2.5 , true , false , null , \"\" , { } , [ ] ] ")]
    [InlineData("\"text\"")]
    [InlineData("-0")]
    [InlineData("{\"text\":\"caf\u00e9 \U0001F600 \u65e5\u672c\"}")] // text past ASCII: UTF-8, checked as such
    public void Plain_values_are_valid_at_once(string json) => Assert.True(PlainJson.IsCertainlyValid(Encoding.UTF8.GetBytes(json)));

    [Theory]
    [InlineData("")] // empty: the full check refuses it
    [InlineData("   ")]
    [InlineData("01")]
    [InlineData("[1,]")]
    [InlineData("{\"a\":1,}")]
    [InlineData("{\"a\" 1}")]
    [InlineData("{\"a\":1]")]
    [InlineData("[1}")]
    [InlineData("1 2")]
    [InlineData("-")]
    [InlineData("1.")]
    [InlineData(".5")]
    [InlineData("tru")]
    [InlineData("nulll")]
    [InlineData("{1:2}")]
    [InlineData("\"a\u0001\"")]
    [InlineData("\"a\\\"b\"")] // an escape: likewise
    [InlineData("1e5")] // an exponent: likewise
    [InlineData("\u00e9")] // past ASCII outside a string

    [InlineData("[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]")] // 17 deep: likewise
    public void Anything_else_is_left_to_the_full_check(string json) => Assert.False(PlainJson.IsCertainlyValid(Encoding.UTF8.GetBytes(json)));

    [Theory]
    [InlineData(new byte[] { (byte)'"', 0xC3, (byte)'"' })] // a sequence cut short
    [InlineData(new byte[] { (byte)'"', 0xFF, (byte)'"' })] // never UTF-8
    [InlineData(new byte[] { (byte)'"', 0xED, 0xA0, 0x80, (byte)'"' })] // a surrogate's bytes
    [InlineData(new byte[] { (byte)'[', (byte)'"', (byte)'a', (byte)'"', (byte)',', (byte)'"', 0xC0, 0xAF, (byte)'"', (byte)']' })] // an overlong form
    public void A_string_whose_bytes_are_not_utf8_is_left_to_the_full_check(byte[] json)
    {
        Assert.False(PlainJson.IsCertainlyValid(json));
        Assert.False(PayloadTranscoder.IsValidJson(json));
    }
}
