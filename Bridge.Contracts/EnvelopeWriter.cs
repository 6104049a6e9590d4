using System.Buffers;
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

    // The keys as MessagePack str, encoded once: the bytes MessagePackWriter.Write(key) writes.
    private static readonly byte[] TypeKeyBytes = EncodeMessagePackString(EnvelopeKeys.Type);
    private static readonly byte[] RoomKeyBytes = EncodeMessagePackString(EnvelopeKeys.Room);
    private static readonly byte[] IdKeyBytes = EncodeMessagePackString(EnvelopeKeys.Id);

    // The type and room this thread wrote last, with their MessagePack str: a replay or a room's burst writes the same
    // two strings (the same instances) into every frame, so each is encoded once ("Replay, seventh pass (issue 14)").
    [ThreadStatic]
    private static string? t_type;

    [ThreadStatic]
    private static byte[]? t_typeBytes;

    [ThreadStatic]
    private static string? t_room;

    [ThreadStatic]
    private static byte[]? t_roomBytes;

    // The same two, escaped for JSON by the default encoder (a writer with an encoder of its own writes them as they
    // come): "Replay, eighth pass (issue 14)".
    [ThreadStatic]
    private static string? t_jsonType;

    [ThreadStatic]
    private static JsonEncodedText t_jsonTypeText;

    [ThreadStatic]
    private static string? t_jsonRoom;

    [ThreadStatic]
    private static JsonEncodedText t_jsonRoomText;

    // Longer strings are written as they come: they are rare as types or rooms, and the memo would keep them alive.
    private const int MemoMaxLength = 256;

    /// <summary>
    /// Starts a JSON envelope: <c>{"type":…,"room":…,"id":…</c> (room and id only when not null). Throws
    /// <see cref="ArgumentNullException"/> when <paramref name="writer"/> or <paramref name="type"/> is null.
    /// </summary>
    public static void WriteStart(Utf8JsonWriter writer, string type, string? room, string? id)
    {
        ArgumentNullException.ThrowIfNull(writer);
        ArgumentNullException.ThrowIfNull(type);
        writer.WriteStartObject();
        var remember = writer.Options.Encoder is null;
        WriteRemembered(writer, TypeKey, type, remember, ref t_jsonType, ref t_jsonTypeText);
        if (room is not null)
        {
            WriteRemembered(writer, RoomKey, room, remember, ref t_jsonRoom, ref t_jsonRoomText);
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
        writer.WriteRaw(TypeKeyBytes);
        WriteRemembered(ref writer, type, ref t_type, ref t_typeBytes);
        if (room is not null)
        {
            writer.WriteRaw(RoomKeyBytes);
            WriteRemembered(ref writer, room, ref t_room, ref t_roomBytes);
        }

        if (id is not null)
        {
            writer.WriteRaw(IdKeyBytes);
            writer.Write(id);
        }
    }

    /// <summary>
    /// <paramref name="value"/> as one MessagePack str: the bytes <c>MessagePackWriter.Write(value)</c> writes. For
    /// values written into many frames (keys), encoded once. Throws <see cref="ArgumentNullException"/> when
    /// <paramref name="value"/> is null.
    /// </summary>
    public static byte[] EncodeMessagePackString(string value)
    {
        ArgumentNullException.ThrowIfNull(value);
        var buffer = new ArrayBufferWriter<byte>(value.Length + 8);
        var writer = new MessagePackWriter(buffer);
        writer.Write(value);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    // Writes key: value, the value escaped once when it is the very string written last in this slot.
    private static void WriteRemembered(Utf8JsonWriter writer, JsonEncodedText key, string value, bool remember, ref string? last, ref JsonEncodedText text)
    {
        if (!remember)
        {
            writer.WriteString(key, value);
            return;
        }

        if (!ReferenceEquals(value, last))
        {
            if (value.Length > MemoMaxLength)
            {
                writer.WriteString(key, value);
                return;
            }

            text = JsonEncodedText.Encode(value);
            last = value;
        }

        writer.WriteString(key, text);
    }

    // Writes value as str: the remembered bytes when it is the very string written last in this slot.
    private static void WriteRemembered(ref MessagePackWriter writer, string value, ref string? last, ref byte[]? bytes)
    {
        if (!ReferenceEquals(value, last))
        {
            if (value.Length > MemoMaxLength)
            {
                writer.Write(value);
                return;
            }

            bytes = EncodeMessagePackString(value);
            last = value;
        }

        writer.WriteRaw(bytes);
    }
}
