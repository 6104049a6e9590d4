namespace Bridge.Worker.Nats;

/// <summary>
/// Where a consumer's delivery is in its stream, read from its reply subject (<c>$JS.ACK.…</c>) without allocating.
/// NATS.Net's <c>INatsJSMsg.Metadata</c> gives the same values through a <see cref="Lazy{T}"/> and a
/// <see cref="string.Split(char, StringSplitOptions)"/> of the subject: a replay's profile put 8% of the worker's CPU
/// there (docs/benchmarks.md, "Where the time goes (replay rows)"), so the history cursor reads them here instead.
/// </summary>
/// <remarks>
/// The server's two forms: <c>$JS.ACK.&lt;stream&gt;.&lt;consumer&gt;.&lt;delivered&gt;.&lt;stream seq&gt;.&lt;consumer
/// seq&gt;.&lt;ns&gt;.&lt;pending&gt;</c> (9 tokens) and, with a domain and an account hash after <c>ACK</c>, 12 tokens
/// (a random token last).
/// </remarks>
internal static class AckReply
{
    /// <summary>
    /// The stream seq, consumer seq and stream time (Unix ms) of a delivery; false when <paramref name="reply"/> is
    /// not a JetStream ack subject of either form.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> reply, out ulong streamSeq, out ulong consumerSeq, out long timestampMs)
    {
        streamSeq = consumerSeq = 0;
        timestampMs = 0;
        Span<Range> tokens = stackalloc Range[13];
        var count = reply.Split(tokens, '.');
        // Index of the stream seq token: the consumer seq and the time follow it.
        var at = count switch
        {
            9 => 5,
            12 => 7,
            _ => -1,
        };
        if (at < 0 || !reply[tokens[0]].SequenceEqual("$JS") || !reply[tokens[1]].SequenceEqual("ACK"))
        {
            return false;
        }

        if (!ulong.TryParse(reply[tokens[at]], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out streamSeq) ||
            !ulong.TryParse(reply[tokens[at + 1]], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out consumerSeq) ||
            !long.TryParse(reply[tokens[at + 2]], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var nanoseconds))
        {
            return false;
        }

        timestampMs = nanoseconds / 1_000_000;
        return true;
    }
}
