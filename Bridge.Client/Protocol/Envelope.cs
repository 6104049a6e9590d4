using System.Text.Json;

namespace Bridge.Client.Protocol;

/// <summary>A frame from the server, in either format, with its payload as JSON (or bytes when binary).</summary>
internal sealed class Envelope
{
    private static readonly long MinUnixMs = DateTimeOffset.MinValue.ToUnixTimeMilliseconds();
    private static readonly long MaxUnixMs = DateTimeOffset.MaxValue.ToUnixTimeMilliseconds();

    public string? Type { get; set; }

    public string? Room { get; set; }

    public string? Id { get; set; }

    public ulong? Seq { get; set; }

    public long? Ts { get; set; }

    public string? From { get; set; }

    public JsonElement? Payload { get; set; }

    public byte[]? Binary { get; set; }

    /// <summary>A MessagePack connection's non-binary payload as received (<see cref="Payload"/> is its JSON rendering).</summary>
    public byte[]? MessagePack { get; set; }

    /// <summary><c>room.state</c>: its messages, decoded like room messages (binary payloads kept).</summary>
    public List<Envelope>? Messages { get; set; }

    public string? PayloadString(string name) =>
        Payload is { ValueKind: JsonValueKind.Object } p && p.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    public bool PayloadBool(string name) =>
        Payload is { ValueKind: JsonValueKind.Object } p && p.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.True;

    public long? PayloadInt64(string name) =>
        Payload is { ValueKind: JsonValueKind.Object } p && p.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.Number && v.TryGetInt64(out var n) ? n : null;

    /// <summary>Unix milliseconds from the server as a time; a value outside DateTimeOffset's range (a server bug)
    /// is clamped to it rather than thrown on the receive loop.</summary>
    public static DateTimeOffset FromUnixMs(long ms) =>
        DateTimeOffset.FromUnixTimeMilliseconds(Math.Clamp(ms, MinUnixMs, MaxUnixMs));

    public BridgeMessage ToMessage() => new()
    {
        Type = Type!,
        Room = Room!,
        Id = Id,
        Seq = Seq ?? 0,
        Timestamp = FromUnixMs(Ts ?? 0),
        From = From,
        Payload = Binary is null ? Payload : null,
        // A null byte[] (or a bare null, through the same conversion) would become an empty value: null stays null.
        BinaryPayload = Binary is { } binary ? new ReadOnlyMemory<byte>(binary) : (ReadOnlyMemory<byte>?)null,
        MessagePackPayload = Binary is null && MessagePack is { } value ? new ReadOnlyMemory<byte>(value) : (ReadOnlyMemory<byte>?)null,
    };
}
