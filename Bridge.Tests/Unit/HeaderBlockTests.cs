using System.Buffers;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Nats;
using CsCheck;
using NATS.Client.Core;

namespace Bridge.Tests.Unit;

/// <summary>
/// <see cref="HeaderBlock"/> on odd and malformed header blocks, against NATS.Net's own <see cref="NatsHeaderParser"/>
/// where that one can read them, and never throwing where it cannot.
/// </summary>
public sealed class HeaderBlockTests
{
    private static HeaderBlock Read(string block) => HeaderBlock.Read(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(block)), Encoding.UTF8);

    private static NatsHeaders Parse(string block)
    {
        var headers = new NatsHeaders();
        new NatsHeaderParser(Encoding.UTF8).ParseHeaders(new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(block))), headers);
        return headers;
    }

    private static string? First(NatsHeaders headers, string key) => headers.TryGetValue(key, out var v) && v.Count > 0 ? v[0] : null;

    [Theory]
    [InlineData("NATS/1.0\r\nBridge-Type: chat.message\r\nBridge-From: ana\r\nBridge-Id: m-1\r\nContent-Type: application/json\r\n\r\n")]
    [InlineData("NATS/1.0\r\nbridge-type:   padded\t \r\nBRIDGE-FROM:\tana\r\n\r\n")]
    [InlineData("NATS/1.0\r\nBridge-Type: first\r\nBridge-Type: second\r\nbridge-type: third\r\n\r\n")]
    [InlineData("NATS/1.0\r\nBridge-Type:\r\nBridge-Id: \r\n\r\n")]
    [InlineData("NATS/1.0\r\nX-Other: a: b\r\nBridge-From: ünï\r\n\r\n")]
    [InlineData("NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\nNats-Pending-Bytes: 120\r\n\r\n")]
    [InlineData("NATS/1.0 404 No Messages\r\n\r\n")]
    [InlineData("NATS/1.0\r\n\r\n")]
    public void A_well_formed_block_reads_as_NATS_Net_reads_it(string block)
    {
        var expected = Parse(block);
        var read = Read(block);

        Assert.False(read.Malformed);
        Assert.Equal(expected.Code, read.Status);
        Assert.Equal(First(expected, NatsSubjects.TypeHeader), read.Type);
        Assert.Equal(First(expected, NatsSubjects.FromHeader), read.From);
        Assert.Equal(First(expected, NatsSubjects.IdHeader), read.Id);
        Assert.Equal(First(expected, NatsSubjects.ContentTypeHeader), read.ContentType);
    }

    [Theory]
    [InlineData("HTTP/1.1 200 OK\r\nBridge-Type: t\r\n\r\n", null)] // no NATS version line: nothing is read
    [InlineData("NATS/1.0\r\nno colon here\r\nBridge-Type: t\r\n\r\n", "t")] // the readable lines are kept
    [InlineData("NATS/1.0\r\nBridge Type: x\r\nBridge-Type: t\r\n\r\n", "t")]
    [InlineData("NATS/1.0\r\n: empty name\r\nBridge-Type: t\r\n\r\n", "t")]
    [InlineData("NATS/1.0\r\nBridge-Type: t\r\nBridge-Id: cut", "t")] // a last line without its CRLF
    [InlineData("NATS/1.0 abc\r\nBridge-Type: t\r\n\r\n", "t")] // a status that is no number
    [InlineData("NATS/1.0", null)]
    public void A_malformed_block_that_NATS_Net_rejects_reads_what_it_can_and_says_so(string block, string? type)
    {
        Assert.ThrowsAny<NatsException>(() => Parse(block));

        var read = Read(block);

        Assert.True(read.Malformed);
        Assert.Equal(type, read.Type);
    }

    [Fact]
    public void No_header_block_at_all_reads_as_no_headers_and_not_malformed()
    {
        Assert.Equal(default, HeaderBlock.Read(null, Encoding.UTF8));
        Assert.Equal(default, HeaderBlock.Read(ReadOnlySequence<byte>.Empty, Encoding.UTF8));
    }

    [Fact]
    public void A_huge_value_split_across_buffer_segments_reads_whole()
    {
        var value = new string('v', 100_000);
        var bytes = Encoding.UTF8.GetBytes($"NATS/1.0\r\nX-Big: {value}\r\nBridge-Type: {value}\r\n\r\n");
        // Three segments, split inside the key and inside the value.
        var first = new Segment(bytes.AsMemory(0, 15));
        var last = first.Append(bytes.AsMemory(15, 50_000)).Append(bytes.AsMemory(50_015));

        var read = HeaderBlock.Read(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length), Encoding.UTF8);

        Assert.False(read.Malformed);
        Assert.Equal(value, read.Type);
    }

    [Fact]
    public void A_known_type_changes_nothing_read_and_a_value_spelling_it_is_that_very_string()
    {
        string[] values = ["chat.message", " chat.message\t", "chat.messagE", "chat.message2", "", "ünï", "chat.mess"];
        string[] encodings = ["utf-8", "us-ascii", "iso-8859-1", "utf-16"];
        var gen = Gen.Select(Gen.Int[0, values.Length - 1], Gen.Int[0, values.Length - 1], Gen.Int[0, encodings.Length - 1], Gen.Bool);
        gen.Sample((v, k, e, twice) =>
        {
            var encoding = Encoding.GetEncoding(encodings[e]);
            var text = $"NATS/1.0\r\nBridge-Type: {values[v]}\r\n" + (twice ? "bridge-type: other\r\n" : "") + "Bridge-From: ana\r\n\r\n";
            var block = new ReadOnlySequence<byte>(encoding.GetBytes(text));
            var known = values[k].Trim();
            var plain = HeaderBlock.Read(block, encoding);
            var withKnown = HeaderBlock.Read(block, encoding, knownType: known);
            Assert.Equal(plain, withKnown);
            Assert.Equal(
                plain.Type == known && encoding.CodePage != 1200 && Ascii.IsValid(known),
                ReferenceEquals(withKnown.Type, known));
        }, iter: 2_000);
    }
}
