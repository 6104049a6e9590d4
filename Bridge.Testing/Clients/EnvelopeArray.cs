using MessagePack;

namespace Bridge.Testing;

/// <summary>
/// Splits a server message of a batch subprotocol (<c>bridge.v1.json-batch</c>, <c>bridge.v1.msgpack-batch</c>) into the
/// envelopes it holds, with library readers independent of the worker's writer: a JSON array of objects, a
/// MessagePack array of maps. Each envelope's bytes are exactly as they are in the message.
/// </summary>
public static class EnvelopeArray
{
    /// <summary>
    /// Adds to <paramref name="envelopes"/> where each element of <paramref name="message"/> is, in order; throws
    /// <see cref="FormatException"/> when the message is not an array (or a JSON/MessagePack error when malformed).
    /// </summary>
    public static void Split(ReadOnlyMemory<byte> message, bool msgPack, List<Range> envelopes)
    {
        if (msgPack)
        {
            var reader = new MessagePackReader(message);
            if (reader.NextMessagePackType != MessagePackType.Array)
            {
                throw new FormatException("a batch message must be a MessagePack array");
            }

            var count = reader.ReadArrayHeader();
            if (count == 0)
            {
                throw new FormatException("a batch message's array is never empty");
            }

            for (var i = 0; i < count; i++)
            {
                var start = (int)reader.Consumed;
                reader.Skip();
                envelopes.Add(start..(int)reader.Consumed);
            }

            if (!reader.End)
            {
                throw new FormatException("unexpected data after the MessagePack array");
            }

            return;
        }

        SplitJson(message.Span, envelopes);
    }

    /// <summary>
    /// A JSON array of objects, split without tokenizing them (the load harness's clients share the machine with the
    /// worker they measure): each object ends where its braces, outside strings, balance. The array's own syntax is
    /// checked (at least one element, a comma between two, nothing after the last but <c>]</c>); the tests decode each
    /// envelope with a JSON parser afterwards, so a malformed one still fails there.
    /// </summary>
    private static void SplitJson(ReadOnlySpan<byte> message, List<Range> envelopes)
    {
        var at = SkipSpace(message, 0);
        if (at == message.Length || message[at] != (byte)'[')
        {
            throw new FormatException("a batch message must be a JSON array");
        }

        at = SkipSpace(message, at + 1);
        while (true)
        {
            if (at == message.Length || message[at] != (byte)'{')
            {
                throw new FormatException("a batch message's elements must be JSON objects, at least one");
            }

            var start = at;
            var depth = 0;
            do
            {
                var next = message[at..].IndexOfAny("{}\""u8);
                if (next < 0)
                {
                    throw new FormatException("unterminated JSON object in a batch message");
                }

                at += next;
                switch (message[at++])
                {
                    case (byte)'{':
                        depth++;
                        break;
                    case (byte)'}':
                        depth--;
                        break;
                    default:
                        at = EndOfString(message, at);
                        break;
                }
            }
            while (depth > 0);

            envelopes.Add(start..at);

            // A comma and the next object, or the end of the array: nothing else.
            at = SkipSpace(message, at);
            if (at < message.Length && message[at] == (byte)',')
            {
                at = SkipSpace(message, at + 1);
                continue;
            }

            if (at < message.Length && message[at] == (byte)']')
            {
                break;
            }

            throw new FormatException("a batch message's elements must be separated by commas and closed by ']'");
        }

        if (SkipSpace(message, at + 1) != message.Length)
        {
            throw new FormatException("unexpected data after the JSON array");
        }
    }

    // The index after the closing quote of the string whose opening quote is just before at.
    private static int EndOfString(ReadOnlySpan<byte> json, int at)
    {
        while (true)
        {
            var next = json[at..].IndexOfAny((byte)'"', (byte)'\\');
            if (next < 0)
            {
                throw new FormatException("unterminated JSON string in a batch message");
            }

            at += next;
            if (json[at] == (byte)'"')
            {
                return at + 1;
            }

            at += 2; // an escape: the next byte is never the string's end
        }
    }

    private static int SkipSpace(ReadOnlySpan<byte> json, int at)
    {
        while (at < json.Length && json[at] is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n')
        {
            at++;
        }

        return at;
    }
}
