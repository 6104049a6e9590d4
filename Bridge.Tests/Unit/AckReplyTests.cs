using Bridge.Worker.Nats;

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
}
