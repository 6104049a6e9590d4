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
    /// <see cref="ulong"/>: what <c>ulong.TryParse</c> with <c>NumberStyles.None</c> takes) followed by a dot, in one pass,
    /// and moves past both. Every number either form reads is followed by another token.
    /// </summary>
    internal static bool TryReadNumber(ref ReadOnlySpan<char> rest, out ulong value)
    {
        value = 0;
        var i = 0;
        for (; i < rest.Length; i++)
        {
            var digit = (uint)(rest[i] - '0');
            if (digit > 9)
            {
                break;
            }

            // Up to 19 digits are always within a ulong (a stream time in ns has 19 until 2286): only longer ones are checked.
            if (i >= 19 && value > (ulong.MaxValue - digit) / 10)
            {
                return false;
            }

            value = (value * 10) + digit;
        }

        if (i == 0 || i == rest.Length || rest[i] != '.')
        {
            return false;
        }

        rest = rest[(i + 1)..];
        return true;
    }
}

/// <summary>
/// The reply subjects of one consumer's deliveries, read past the start they all share: <c>$JS.ACK.&lt;stream&gt;.&lt;
/// consumer&gt;.</c> is skipped with one comparison and only the numbers after it are read ("Replay, ninth pass (issue
/// 14)"). Gives what <see cref="AckReply.TryParse"/> gives for every subject: one that does not start so (the 12-token
/// form of a domain) or does not read as the 9-token form after it is read by <see cref="AckReply.TryParse"/>.
/// </summary>
internal sealed class ConsumerAckReplies
{
    /// <param name="stream">The consumer's stream (a NATS name: no dots).</param>
    /// <param name="consumer">The consumer (a NATS name: no dots).</param>
    /// <exception cref="ArgumentException">A name is empty or holds a dot.</exception>
    public ConsumerAckReplies(string stream, string consumer)
    {
        foreach (var name in (ReadOnlySpan<string>)[stream, consumer])
        {
            if (string.IsNullOrEmpty(name) || name.Contains('.'))
            {
                throw new ArgumentException($"'{name}' is not a stream or consumer name", name == stream ? nameof(stream) : nameof(consumer));
            }
        }

        Prefix = $"$JS.ACK.{stream}.{consumer}.";
    }

    /// <summary>The start of the consumer's reply subjects in the 9-token form (four dots: the rest has four more).</summary>
    public string Prefix { get; }

    /// <summary>As <see cref="AckReply.TryParse"/>, faster for a reply of this consumer.</summary>
    public bool TryParse(ReadOnlySpan<char> reply, out ulong streamSeq, out ulong consumerSeq, out long timestampMs)
    {
        if (reply.StartsWith(Prefix, StringComparison.Ordinal))
        {
            // <delivered>.<stream seq>.<consumer seq>.<ns>.<pending>: the delivered count is skipped, the pending one
            // must hold no dot (nine tokens in all, as the general reading counts).
            var rest = reply[Prefix.Length..];
            var delivered = rest.IndexOf('.');
            if (delivered >= 0)
            {
                rest = rest[(delivered + 1)..];
                if (AckReply.TryReadNumber(ref rest, out streamSeq) && AckReply.TryReadNumber(ref rest, out consumerSeq) &&
                    AckReply.TryReadNumber(ref rest, out var nanoseconds) && nanoseconds <= long.MaxValue && !rest.Contains('.'))
                {
                    timestampMs = (long)nanoseconds / 1_000_000;
                    return true;
                }
            }
        }

        return AckReply.TryParse(reply, out streamSeq, out consumerSeq, out timestampMs);
    }
}
