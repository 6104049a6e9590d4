using System.Text.Json;
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

        var json = new Utf8JsonReader(message.Span);
        if (!json.Read() || json.TokenType != JsonTokenType.StartArray)
        {
            throw new FormatException("a batch message must be a JSON array");
        }

        while (json.Read() && json.TokenType != JsonTokenType.EndArray)
        {
            var start = (int)json.TokenStartIndex;
            json.Skip();
            envelopes.Add(start..(int)json.BytesConsumed);
        }

        if (json.TokenType != JsonTokenType.EndArray || json.Read())
        {
            throw new FormatException("unexpected data after the JSON array");
        }
    }
}
