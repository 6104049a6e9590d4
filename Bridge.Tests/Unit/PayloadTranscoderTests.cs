using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Tests.Security;
using CsCheck;
using MessagePack;
using static Bridge.Tests.Infrastructure.Raw;

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

    [Theory]
    [InlineData(1.0)]
    [InlineData(-0.0)]
    [InlineData(100.0)]
    [InlineData(1.5)]
    [InlineData(1e15)]
    [InlineData(1e300)]
    [InlineData(18446744073709551615.0)]
    public void Whole_floats_render_as_real_numbers_only_where_arguments_are_read(double value)
    {
        var pack = MessagePackSerializer.Serialize(value);
        using var rendered = System.Text.Json.JsonDocument.Parse(PayloadTranscoder.MessagePackToJson(pack));
        Assert.Equal(value, rendered.RootElement.GetDouble());
        Assert.Equal(double.IsInteger(value) && value is >= 1 and < 1e19, rendered.RootElement.TryGetUInt64(out _)); // what JSON members get: unchanged

        // As an argument: the same number, never an integer (JSON 1.0 is none either).
        using var argument = System.Text.Json.JsonDocument.Parse(PayloadTranscoder.MessagePackToJson(pack, wholeFloatsAsReal: true));
        Assert.Equal(value, argument.RootElement.GetDouble());
        Assert.False(argument.RootElement.TryGetUInt64(out _));
        Assert.False(argument.RootElement.TryGetInt64(out _));
    }

    [Theory]
    [InlineData(1.0, "1.0")]
    [InlineData(-0.0, "-0.0")]
    [InlineData(1e16, "10000000000000000.0")]
    [InlineData(1e17, "1E+17")]
    [InlineData(1.5, "1.5")]
    public void Whole_floats_as_arguments_are_written_as_the_documentation_says(double value, string text) =>
        Assert.Equal(text, Encoding.UTF8.GetString(PayloadTranscoder.MessagePackToJson(MessagePackSerializer.Serialize(value), wholeFloatsAsReal: true)));

    [Fact]
    public void A_reader_exception_is_described_in_our_words_with_its_position_counted_from_one()
    {
        var ex = Assert.ThrowsAny<System.Text.Json.JsonException>(() => System.Text.Json.JsonDocument.Parse("""{"a" }"""));
        Assert.Equal("expected ':' after a name, found '}' (line 1, byte 6)", PayloadTranscoder.DescribeMalformedJson(ex));
        Assert.Equal("the text is not well-formed JSON", PayloadTranscoder.DescribeMalformedJson(new System.Text.Json.JsonException("no position")));
        Assert.Throws<ArgumentNullException>(() => PayloadTranscoder.DescribeMalformedJson(null!));
    }

    [Fact]
    public void A_serializer_exception_is_described_without_its_path_separators_or_dotnet_type_names()
    {
        var wrongType = Assert.ThrowsAny<System.Text.Json.JsonException>(() => System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>("""{"x":"a"}"""));
        var described = PayloadTranscoder.DescribeMalformedJson(wrongType);
        Assert.StartsWith("the value at $.x does not have the expected type (line 1, byte ", described, StringComparison.Ordinal);
        Assert.DoesNotContain("|", described, StringComparison.Ordinal);
        Assert.DoesNotContain("System.", described, StringComparison.Ordinal);

        var malformed = Assert.ThrowsAny<System.Text.Json.JsonException>(() => System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, int>>("""{"x" }"""));
        Assert.Equal("expected ':' after a name, found '}' (line 1, byte 6)", PayloadTranscoder.DescribeMalformedJson(malformed));
    }

    [Theory]
    [InlineData("", "there is no JSON value (the text is empty or blank)")]
    [InlineData("  ", "there is no JSON value (the text is empty or blank)")]
    [InlineData("""{"a":1,}""", "a comma before '}' (trailing commas are not JSON)")]
    [InlineData("[1,]", "a comma before ']' (trailing commas are not JSON)")]
    [InlineData("""{"a":1 "b":2}""", "expected ',', '}' or ']' after a value, found '\"'")]
    [InlineData("""{"a":tru}""", "'tru}' is not the literal true")]
    [InlineData("""{"a":"x""", "a string is not closed")]
    [InlineData("""{"a":1}}""", "'}' follows the end of the JSON value")]
    [InlineData("""{"a":01}""", "a number starts with 0 followed by '1'")]
    [InlineData("""{"a":1.}""", "expected a digit after '.', found '}'")]
    [InlineData("""{"a":-}""", "expected a digit after the sign, found '}'")]
    [InlineData("""{"a":"\x"}""", "'\\x' is not a JSON escape")]
    [InlineData("""{"a":"\u00g0"}""", "'g' is not a hex digit of a \\u escape")]
    [InlineData("""{a:1}""", "expected a name in double quotes, found 'a'")]
    [InlineData("""{"a":}""", "'}' cannot start a value")]
    [InlineData("""{"a":1""", "a number must be followed by ',', '}', ']' or a space (at '1')")]
    [InlineData("""{"a":1,""", "the text ends where a name or value should follow")]
    [InlineData("""]""", "']' cannot start a value")]
    [InlineData("""{"a":1,"a":2}""", "duplicate name: 'a' appears twice in one object")]
    public void Malformed_json_is_described_in_our_words(string json, string described)
    {
        var ex = Assert.ThrowsAny<System.Text.Json.JsonException>(() =>
            System.Text.Json.JsonDocument.Parse(json, new System.Text.Json.JsonDocumentOptions { AllowDuplicateProperties = false }).Dispose());
        var text = PayloadTranscoder.DescribeMalformedJson(ex);
        Assert.StartsWith(described, text, StringComparison.Ordinal);
        Wording.AssertOurs(text);
    }

    [Fact]
    public void Malformed_msgpack_is_described_in_our_words_and_its_text_rule_without_json_escapes()
    {
        // A str32 that claims 4 GiB, a map32 that claims 4 G entries, a truncated int: MessagePack's exceptions, our words.
        foreach (var bytes in new byte[][] { [0xDB, 0xFF, 0xFF, 0xFF, 0xFF, 0x61], [0xDF, 0xFF, 0xFF, 0xFF, 0xFF], [0xCD, 0x01] })
        {
            var problem = PayloadTranscoder.CheckMessagePack(bytes);
            Assert.Equal("malformed MessagePack payload: the data ends inside a value, or a length claims more bytes than there are", problem);
            Wording.AssertOurs(problem!);
        }

        Assert.Equal("a string is not valid UTF-8 text", PayloadTranscoder.CheckMessagePack(new byte[] { 0xA2, 0xC3, 0x28 }));
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
        Assert.Equal("duplicate name: 'k0' appears twice in one object", PayloadTranscoder.CheckMessagePack(Map(100, twice: true)));
    }

    [Fact]
    public void A_long_duplicate_name_is_cut_at_64_characters_never_inside_a_surrogate_pair()
    {
        var a64 = new string('a', 64);
        Assert.Equal($"duplicate name: '{a64}...' appears twice in one object", PayloadTranscoder.DuplicateName(a64 + "b"));
        Assert.Equal($"duplicate name: '{a64}' appears twice in one object", PayloadTranscoder.DuplicateName(a64));
        // 63 characters, then an emoji (two UTF-16 units): cut before it, so the message is Unicode text.
        var cut = PayloadTranscoder.DuplicateName(new string('a', 63) + "\U0001F600" + "b");
        Assert.Equal($"duplicate name: '{new string('a', 63)}...' appears twice in one object", cut);
        Assert.False(cut.AsSpan().ContainsAnyInRange((char)0xD800, (char)0xDFFF), cut);
    }

    [Fact]
    public void The_contracts_readme_example_renders_what_it_says()
    {
        byte[] body = [0x81, 0xA1, 0x74, 0xD6, 0xFF, 0x69, 0x55, 0xB9, 0x01];
        Assert.Null(PayloadTranscoder.CheckMessagePack(body));
        Assert.Equal("{\"t\":\"2026-01-01T00:00:01Z\"}", Encoding.UTF8.GetString(PayloadTranscoder.MessagePackToJson(body)));
    }

    [Theory]
    [InlineData("{\"sent\":0,\"pad\":\"xxxxxxxx\"}")]
    [InlineData("[]")]
    [InlineData("{}")]
    [InlineData("[{},[],{\"a\":[1,{\"b\":[]}],\"c\":{}},[[[]]]]")]
    [InlineData("{\"a\":{\"b\":{\"c\":[1,2,{\"d\":null}]},\"e\":true},\"f\":false}")]
    [InlineData("\"top\"")]
    [InlineData("42")]
    [InlineData("-9223372036854775808")]
    [InlineData("18446744073709551615")]
    [InlineData("[1.5,-0.0,1e300,12345678901234567890123,3.0]")]
    [InlineData("{\"\\u00e9t\\u00e9\":\"caf\\u00e9 \\/ \\\"q\\\" \\n \\ud83d\\ude00\",\"plain\":\"é😀\"}")]
    [InlineData(" { \"spaced\" : [ 1 , 2 ] } ")]
    public void A_json_payload_becomes_the_same_messagepack_value_its_document_gives(string json) =>
        Assert.Equal(ByDocument(json), ToMessagePack(json));

    [Fact]
    public void Payloads_with_many_containers_and_the_deepest_nesting_become_the_same_messagepack_value_as_their_document()
    {
        var many = "[" + string.Join(",", Enumerable.Range(0, 300).Select(i => $"{{\"k{i}\":[{i},{{}}]}}")) + "]";
        Assert.Equal(ByDocument(many), ToMessagePack(many));
        var deep = new string('[', PayloadTranscoder.MaxDepth) + "7" + new string(']', PayloadTranscoder.MaxDepth);
        Assert.Equal(ByDocument(deep), ToMessagePack(deep));
    }

    /// <summary>
    /// Any value (nested, with names twice, strings that are not Unicode text, numbers beyond float64), and arrays and
    /// objects wide enough for every header form up to 16-bit counts.
    /// </summary>
    private static readonly Gen<RawValue> JsonValues = Gen.Frequency(
        (4, FuzzTests.Values),
        (1, FuzzTests.Values.Array[0, 40].Select(items => L(items))),
        (1, FuzzTests.Values.Array[0, 40].Select(items => (RawValue)new RawValue.Map([.. items.Select((item, i) => (S($"k{i}"), item))]))));

    [Fact]
    public void Any_checked_json_value_becomes_the_bytes_of_its_document_and_any_other_throws()
    {
        JsonValues.Select(value => value.ToJson()).Sample(json =>
        {
            var text = Encoding.UTF8.GetString(json);
            if (PayloadTranscoder.CheckJson(json) is not null)
            {
                // Malformed JSON never reaches a client as MessagePack: the gateway sends the bytes as binary instead.
                Assert.ThrowsAny<Exception>(() => ToMessagePack(json));
                return;
            }

            var bytes = ToMessagePack(json);
            Assert.Equal(ByDocument(text), bytes);
            // Checked where it entered (a stored message's PayloadChecked): the text is not checked again, same bytes.
            Assert.Equal(bytes, ToMessagePack(json, stringsChecked: true));
            // The MessagePack library reads it as exactly one value.
            var reader = new MessagePackReader(bytes);
            _ = MessagePackSerializer.Deserialize<object>(ref reader);
            Assert.True(reader.End);
        }, iter: 3000);
    }

    [Fact]
    public void Containers_past_16_bit_counts_get_32_bit_headers_as_their_document_gives()
    {
        var wide = "[" + string.Join(",", Enumerable.Repeat("0", 70_000)) + "]";
        var bytes = ToMessagePack(wide);
        Assert.Equal(ByDocument(wide), bytes);
        Assert.Equal(70_000, MessagePackSerializer.Deserialize<object[]>(bytes).Length);
    }

    [Theory]
    [InlineData("{\"a\":1,\"a\":2}")] // a name twice
    [InlineData("[1,")] // malformed
    [InlineData("[1e400]")] // beyond float64
    public void A_json_payload_without_a_messagepack_form_throws(string json) =>
        Assert.ThrowsAny<Exception>(() => ToMessagePack(json));

    private static byte[] ToMessagePack(string json) => ToMessagePack(Encoding.UTF8.GetBytes(json));

    private static byte[] ToMessagePack(byte[] json, bool stringsChecked = false)
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePack.MessagePackWriter(buffer);
        PayloadTranscoder.WriteJsonAsMessagePack(json, ref writer, stringsChecked);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The documented mapping (docs/protocol.md §3) read off a parsed document: the reference the encoder must match.</summary>
    private static byte[] ByDocument(string json)
    {
        using var document = System.Text.Json.JsonDocument.Parse(json);
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePack.MessagePackWriter(buffer);
        Write(document.RootElement, ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();

        static void Write(System.Text.Json.JsonElement element, ref MessagePack.MessagePackWriter writer)
        {
            switch (element.ValueKind)
            {
                case System.Text.Json.JsonValueKind.Object:
                    writer.WriteMapHeader(element.EnumerateObject().Count());
                    foreach (var property in element.EnumerateObject())
                    {
                        writer.Write(property.Name);
                        Write(property.Value, ref writer);
                    }

                    break;
                case System.Text.Json.JsonValueKind.Array:
                    writer.WriteArrayHeader(element.GetArrayLength());
                    foreach (var item in element.EnumerateArray())
                    {
                        Write(item, ref writer);
                    }

                    break;
                case System.Text.Json.JsonValueKind.String:
                    writer.Write(element.GetString());
                    break;
                case System.Text.Json.JsonValueKind.Number when element.TryGetInt64(out var l):
                    writer.Write(l);
                    break;
                case System.Text.Json.JsonValueKind.Number when element.TryGetUInt64(out var ul):
                    writer.Write(ul);
                    break;
                case System.Text.Json.JsonValueKind.Number:
                    writer.Write(element.GetDouble());
                    break;
                case System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False:
                    writer.Write(element.GetBoolean());
                    break;
                default:
                    writer.WriteNil();
                    break;
            }
        }
    }
}
