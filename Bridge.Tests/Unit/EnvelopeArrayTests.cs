using System.Text;
using Bridge.Testing;

namespace Bridge.Tests.Unit;

/// <summary>The tests' splitter of batch messages checks the array syntax the worker writes, not only its elements.</summary>
public sealed class EnvelopeArrayTests
{
    [Theory]
    [InlineData("""[{"a":1}]""", 1)]
    [InlineData(""" [ {"a":"}{,]"} , {"b":{"c":[1,2]}} ] """, 2)]
    public void A_well_formed_json_array_splits_into_its_objects(string message, int count)
    {
        var envelopes = new List<Range>();
        EnvelopeArray.Split(Encoding.UTF8.GetBytes(message), msgPack: false, envelopes);
        Assert.Equal(count, envelopes.Count);
        Assert.All(envelopes, r => Assert.Equal((byte)'}', Encoding.UTF8.GetBytes(message)[r][^1]));
    }

    [Theory]
    [InlineData("""[]""")]
    [InlineData("""[{"a":1}{"b":2}]""")]
    [InlineData("""[{"a":1},]""")]
    [InlineData("""[{"a":1} x]""")]
    [InlineData("""[{"a":1}""")]
    [InlineData("""[{"a":1}],""")]
    public void A_malformed_json_array_is_refused(string message) =>
        Assert.Throws<FormatException>(() => EnvelopeArray.Split(Encoding.UTF8.GetBytes(message), msgPack: false, []));

    [Fact]
    public void An_empty_msgpack_array_is_refused() =>
        Assert.Throws<FormatException>(() => EnvelopeArray.Split(new byte[] { 0x90 }, msgPack: true, []));
}
