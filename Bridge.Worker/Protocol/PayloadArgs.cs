using System.Text.Json;
using Bridge.Contracts;

namespace Bridge.Worker.Protocol;

/// <summary>
/// Arguments of a control frame, read from its payload as JSON (a MessagePack payload is rendered as JSON first:
/// control frames are few). The payload was checked by the codec (well-formed, at most 32 levels deep, every string
/// Unicode text, a JSON form for every value), and every read here checks the value's kind first: no call can throw
/// on client input.
/// </summary>
internal static class PayloadArgs
{
    /// <summary>Parses the payload as a JSON object; null when there is none or it is not an object.</summary>
    public static JsonDocument? Parse(InboundFrame frame)
    {
        var json = frame.PayloadKind switch
        {
            PayloadKind.Json => frame.Payload,
            // A whole float stays a real number (1.0): integer arguments refuse it, as JSON's 1.0.
            PayloadKind.MessagePack => PayloadTranscoder.MessagePackToJson(frame.Payload, wholeFloatsAsReal: true),
            _ => ReadOnlyMemory<byte>.Empty,
        };
        if (json.IsEmpty)
        {
            return null;
        }

        var document = JsonDocument.Parse(json);
        if (document.RootElement.ValueKind == JsonValueKind.Object)
        {
            return document;
        }

        document.Dispose();
        return null;
    }

    /// <summary>
    /// True when the frame has no payload, a null one or an object (a JSON object, a MessagePack map); false for any
    /// other value (an array, a string, a number, a boolean, bytes), which holds no named arguments.
    /// </summary>
    public static bool IsObjectOrNone(InboundFrame frame)
    {
        var first = frame.Payload.Span.IsEmpty ? (byte)0 : frame.Payload.Span[0];
        return frame.PayloadKind switch
        {
            PayloadKind.None => true,
            // The codec kept the payload from its first byte (no whitespace before it).
            PayloadKind.Json => first is (byte)'{' or (byte)'n',
            // fixmap, map 16, map 32, nil.
            PayloadKind.MessagePack => first is (>= 0x80 and <= 0x8f) or 0xde or 0xdf or 0xc0,
            _ => false,
        };
    }

    /// <summary>
    /// Reads an optional string argument of the frame's payload; false when present but not a string. The codecs
    /// have checked every string as Unicode text, so reading it cannot fail.
    /// </summary>
    public static bool TryGetString(InboundFrame frame, string name, out string? value)
    {
        value = null;
        using var args = Parse(frame);
        if (args is null || !args.RootElement.TryGetProperty(name, out var property) || property.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (property.ValueKind != JsonValueKind.String)
        {
            return false;
        }

        value = property.GetString();
        return true;
    }

    /// <summary>Reads an optional non-negative integer; false when present but not one.</summary>
    public static bool TryGetUInt64(JsonElement? args, string name, out ulong? value)
    {
        value = null;
        if (args is not { } obj || !obj.TryGetProperty(name, out var property) || property.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (property.ValueKind == JsonValueKind.Number && property.TryGetUInt64(out var v))
        {
            value = v;
            return true;
        }

        return false;
    }

    /// <summary>Reads an optional boolean; false when present but not one.</summary>
    public static bool TryGetBool(JsonElement? args, string name, out bool? value)
    {
        value = null;
        if (args is not { } obj || !obj.TryGetProperty(name, out var property) || property.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (property.ValueKind is JsonValueKind.True or JsonValueKind.False)
        {
            value = property.GetBoolean();
            return true;
        }

        return false;
    }

    /// <summary>Reads an optional finite number; false when present but not one (a number beyond float64 is not one).</summary>
    public static bool TryGetDouble(JsonElement? args, string name, out double? value)
    {
        value = null;
        if (args is not { } obj || !obj.TryGetProperty(name, out var property) || property.ValueKind == JsonValueKind.Null)
        {
            return true;
        }

        if (property.ValueKind == JsonValueKind.Number && property.TryGetDouble(out var v) && double.IsFinite(v))
        {
            value = v;
            return true;
        }

        return false;
    }
}
