using System.Text.Json;
using MessagePack;

namespace Bridge.Contracts;

/// <summary>
/// Writes the start of an envelope (docs/protocol.md §2) in either format: the keys every frame begins with, in the
/// server's order (<c>type</c>, <c>room</c>, <c>id</c>), leaving out those without a value. The caller writes the
/// rest (<c>seq</c>, <c>ts</c>, <c>from</c>, <c>enc</c>, <c>payload</c>) and, in JSON, ends the object.
/// </summary>
public static class EnvelopeWriter
{
    private static readonly JsonEncodedText TypeKey = JsonEncodedText.Encode(EnvelopeKeys.Type);
    private static readonly JsonEncodedText RoomKey = JsonEncodedText.Encode(EnvelopeKeys.Room);
    private static readonly JsonEncodedText IdKey = JsonEncodedText.Encode(EnvelopeKeys.Id);

    /// <summary>
    /// Starts a JSON envelope: <c>{"type":…,"room":…,"id":…</c> (room and id only when not null). Throws
    /// <see cref="ArgumentNullException"/> when <paramref name="writer"/> or <paramref name="type"/> is null.
    /// </summary>
    public static void WriteStart(Utf8JsonWriter writer, string type, string? room, string? id)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(type);
        writer.WriteStartObject();
        writer.WriteString(TypeKey, type);
        if (room is not null)
        {
            writer.WriteString(RoomKey, room);
        }

        if (id is not null)
        {
            writer.WriteString(IdKey, id);
        }
    }

    /// <summary>
    /// Starts a MessagePack envelope: the map header for <c>type</c>, <c>room</c> and <c>id</c> (those not null) plus
    /// <paramref name="otherKeys"/> more, then those three. The caller must write exactly <paramref name="otherKeys"/>
    /// key/value pairs after it. Throws <see cref="ArgumentNullException"/> when <paramref name="type"/> is null.
    /// </summary>
    public static void WriteStart(ref MessagePackWriter writer, string type, string? room, string? id, int otherKeys)
    {
        ArgumentNullException.ThrowIfNull(type);
        writer.WriteMapHeader(1 + (room is null ? 0 : 1) + (id is null ? 0 : 1) + otherKeys);
        writer.Write(EnvelopeKeys.Type);
        writer.Write(type);
        if (room is not null)
        {
            writer.Write(EnvelopeKeys.Room);
            writer.Write(room);
        }

        if (id is not null)
        {
            writer.Write(EnvelopeKeys.Id);
            writer.Write(id);
        }
    }
}
