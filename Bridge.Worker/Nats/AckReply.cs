using System.Globalization;

namespace Bridge.Worker.Nats;

/// <summary>
/// Where a consumer's delivery is in its stream, read from its reply subject (<c>$JS.ACK.…</c>) without allocating.
/// NATS.Net's <c>INatsJSMsg.Metadata</c> gives the same values through a <see cref="Lazy{T}"/> and a
/// <see cref="string.Split(char, StringSplitOptions)"/> of the subject: a replay's profile put 8% of the worker's CPU
/// there (docs/benchmarks.md, "Where the time goes (replay rows)"), so the history cursor reads them here instead, in
/// one pass over the subject (no split into tokens, digits read as they come: "Replay, sixth pass (issue 14)").
/// </summary>
/// <remarks>
/// The server's two forms: <c>$JS.ACK.&lt;stream&gt;.&lt;consumer&gt;.&lt;delivered&gt;.&lt;stream seq&gt;.&lt;consumer
/// seq&gt;.&lt;ns&gt;.&lt;pending&gt;</c> (9 tokens) and, with a domain and an account hash after <c>ACK</c>, 12 tokens
/// (a random token last).
/// </remarks>
internal static class AckReply
{
    private const string Prefix = "$JS.ACK.";

    /// <summary>
    /// The stream seq, consumer seq and stream time (Unix ms) of a delivery; false when <paramref name="reply"/> is
    /// not a JetStream ack subject of either form.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> reply, out ulong streamSeq, out ulong consumerSeq, out long timestampMs)
    {
        streamSeq = consumerSeq = 0;
        timestampMs = 0;
        if (!reply.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }

        // Index of the stream seq token: the consumer seq and the time follow it.
        var at = reply.Count('.') switch
        {
            8 => 5,
            11 => 7,
            _ => -1,
        };
        if (at < 0)
        {
            return false;
        }

        // Past the tokens before the stream seq ($JS and ACK are already behind).
        var rest = reply[Prefix.Length..];
        for (var i = 2; i < at; i++)
        {
            rest = rest[(rest.IndexOf('.') + 1)..];
        }

        if (!TryReadNumber(ref rest, out streamSeq) || !TryReadNumber(ref rest, out consumerSeq) ||
            !TryReadNumber(ref rest, out var nanoseconds) || nanoseconds > long.MaxValue)
        {
            return false;
        }

        timestampMs = (long)nanoseconds / 1_000_000;
        return true;
    }

    /// <summary>
    /// Reads the token at the start of <paramref name="rest"/> as a decimal number (digits only, at least one, within
    /// <see cref="ulong"/>: what <c>ulong.TryParse</c> with <c>NumberStyles.None</c> takes) and moves past it and its dot.
    /// </summary>
    private static bool TryReadNumber(ref ReadOnlySpan<char> rest, out ulong value)
    {
        value = 0;
        var end = rest.IndexOf('.');
        var token = end < 0 ? rest : rest[..end];
        rest = end < 0 ? [] : rest[(end + 1)..];
        if (token.IsEmpty)
        {
            return false;
        }

        // Up to 19 digits are always within a ulong (a stream time in ns has 19 until 2286); longer ones are rare enough
        // for the checked parse.
        if (token.Length > 19)
        {
            return ulong.TryParse(token, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        }

        foreach (var c in token)
        {
            var digit = (uint)(c - '0');
            if (digit > 9)
            {
                return false;
            }

            value = (value * 10) + digit;
        }

        return true;
    }
}
