using System.Globalization;
using Bridge.Worker.Nats;
using CsCheck;

namespace Bridge.Tests.Unit;

/// <summary>The history cursor's reading of a consumer delivery's reply subject (<see cref="AckReply"/>).</summary>
public sealed class AckReplyTests
{
    [Theory]
    [InlineData("$JS.ACK.ROOMS.bridge-read-1.1.42.7.1764489600123456789.3")]
    [InlineData("$JS.ACK.hub.ACCHASH.ROOMS.bridge-read-1.1.42.7.1764489600123456789.3.xyz")]
    public void Both_forms_of_the_ack_subject_give_the_stream_seq_consumer_seq_and_stream_time_in_ms(string reply)
    {
        Assert.True(AckReply.TryParse(reply, out var stream, out var consumer, out var timestamp));
        Assert.Equal(42UL, stream);
        Assert.Equal(7UL, consumer);
        Assert.Equal(1764489600123L, timestamp);
    }

    [Theory]
    [InlineData("")]
    [InlineData("_INBOX.abc")]
    [InlineData("$JS.ACK.ROOMS.c.1.42.7.1764489600123456789")] // a token short
    [InlineData("$JS.NAK.ROOMS.c.1.42.7.1764489600123456789.3")]
    [InlineData("$JS.ACK.ROOMS.c.1.x.7.1764489600123456789.3")]
    [InlineData("$JS.ACK.ROOMS.c.1.42.-7.1764489600123456789.3")]
    [InlineData("$JS.ACK.ROOMS.c.1.42.7.18446744073709551616.3")] // time beyond a long
    public void Anything_else_is_not_read_as_a_position(string reply) =>
        Assert.False(AckReply.TryParse(reply, out _, out _, out _));

    [Fact]
    public void Any_subject_reads_as_splitting_it_into_tokens_and_parsing_them_reads_it()
    {
        // Tokens near every edge: empty, digits at and past the ends of a long and a ulong, signs, spaces, non-ASCII digits.
        string[] edges =
        [
            "", "0", "7", "42", "00", "-7", "+7", " 7", "7 ", "x", "1764489600123456789", "9223372036854775807",
            "9223372036854775808", "18446744073709551615", "18446744073709551616", "99999999999999999999", "\u0663", "ACK", "$JS",
        ];
        var token = Gen.OneOf(Gen.Int[0, edges.Length - 1].Select(i => edges[i]), Gen.ULong.Select(u => u.ToString(CultureInfo.InvariantCulture)),
            Gen.String[Gen.Char['*', '9'], 0, 6]);
        var subject = Gen.Select(Gen.Int[0, 3], token.Array[0, 14]).Select((prefix, tokens) =>
            (prefix switch { 0 => "$JS.ACK.", 1 => "$JS.NAK.", 2 => "", _ => "$JS.ACK" }) + string.Join('.', tokens));
        subject.Sample(reply => AssertReadsAsSplitAndParse(reply, AckReply.TryParse(reply, out var stream, out var consumer, out var time), stream, consumer, time),
            iter: 20_000);
    }

    [Fact]
    public void A_consumers_reading_past_its_known_start_gives_what_the_general_reading_gives_for_any_subject()
    {
        // Names as NATS allows them (no dots), some alike the domain form's tokens; numbers and junk after them.
        var name = Gen.OneOf(Gen.Const("ROOMS"), Gen.Const("hub"), Gen.Const("ACCHASH"), Gen.Const("c"), Gen.String[Gen.Char['/', 'Z'], 1, 4]);
        var token = Gen.OneOf(Gen.Const(""), Gen.Const("1764489600123456789"), Gen.Const("18446744073709551616"), Gen.Const("\u0663"),
            Gen.ULong.Select(u => u.ToString(CultureInfo.InvariantCulture)), Gen.String[Gen.Char['*', '9'], 0, 6]);
        // Mostly numbers, as the server writes a reply's five tokens after the names.
        var number = Gen.OneOf(Gen.ULong.Select(u => u.ToString(CultureInfo.InvariantCulture)), Gen.Const("1764489600123456789"),
            Gen.Const("9223372036854775808"), Gen.Const("18446744073709551616"), Gen.Const("00000000000000000000042"));
        var replyTokens = Gen.OneOf(number, number, number, token).Array[5];
        var cases = Gen.Select(name, name, Gen.Int[0, 5], name, name, token.Array[0, 10], replyTokens).Select((stream, consumer, start, a, b, tokens, numbers) =>
        {
            var rest = string.Join('.', tokens);
            var reply = start switch
            {
                0 => $"$JS.ACK.{stream}.{consumer}.{string.Join('.', numbers)}", // the consumer's own, as the server writes it
                1 => $"$JS.ACK.{stream}.{consumer}.{rest}", // the consumer's own start, anything after it
                2 => $"$JS.ACK.{stream}.{consumer}{rest}", // its start without the last dot
                3 => $"$JS.ACK.{a}.{b}.{stream}.{consumer}.{string.Join('.', numbers)}", // the domain form
                4 => $"$JS.ACK.{a}.{b}.{rest}", // another consumer's
                _ => rest,
            };
            return (replies: new ConsumerAckReplies(stream, consumer), reply);
        });
        cases.Sample(c => AssertReadsAsSplitAndParse(c.reply, c.replies.TryParse(c.reply, out var stream, out var consumer, out var time), stream, consumer, time),
            iter: 20_000);

        Assert.True(new ConsumerAckReplies("ROOMS", "c").TryParse("$JS.ACK.ROOMS.c.1.42.7.1764489600123456789.3", out var seq, out var delivered, out var ms));
        Assert.Equal((42UL, 7UL, 1764489600123L), (seq, delivered, ms));
    }

    [Theory]
    [InlineData("", "c")]
    [InlineData("ROOMS", "")]
    [InlineData("ROO.MS", "c")]
    [InlineData("ROOMS", "a.b")]
    public void A_stream_or_consumer_name_with_a_dot_or_empty_is_refused(string stream, string consumer) =>
        Assert.Throws<ArgumentException>(() => new ConsumerAckReplies(stream, consumer));

    private static void AssertReadsAsSplitAndParse(string reply, bool read, ulong streamSeq, ulong consumerSeq, long timestampMs)
    {
        var reference = SplitAndParse(reply, out var streamSeq2, out var consumerSeq2, out var timestampMs2);
        Assert.Equal(reference, read);
        if (reference)
        {
            Assert.Equal((streamSeq2, consumerSeq2, timestampMs2), (streamSeq, consumerSeq, timestampMs));
        }
    }

    // The reading AckReply replaced (string.Split and ulong.TryParse): the reference for the one-pass reading.
    private static bool SplitAndParse(ReadOnlySpan<char> reply, out ulong streamSeq, out ulong consumerSeq, out long timestampMs)
    {
        streamSeq = consumerSeq = 0;
        timestampMs = 0;
        Span<Range> tokens = stackalloc Range[13];
        var count = reply.Split(tokens, '.');
        var at = count switch { 9 => 5, 12 => 7, _ => -1 };
        if (at < 0 || !reply[tokens[0]].SequenceEqual("$JS") || !reply[tokens[1]].SequenceEqual("ACK"))
        {
            return false;
        }

        if (!ulong.TryParse(reply[tokens[at]], NumberStyles.None, CultureInfo.InvariantCulture, out streamSeq) ||
            !ulong.TryParse(reply[tokens[at + 1]], NumberStyles.None, CultureInfo.InvariantCulture, out consumerSeq) ||
            !long.TryParse(reply[tokens[at + 2]], NumberStyles.None, CultureInfo.InvariantCulture, out var nanoseconds))
        {
            return false;
        }

        timestampMs = nanoseconds / 1_000_000;
        return true;
    }
}
