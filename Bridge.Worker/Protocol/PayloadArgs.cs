using System.Text.Json;

namespace Bridge.Worker.Protocol;

/// <summary>
/// Arguments of a control frame, read from its JSON payload (a msgpack payload arrives here as JSON too). The payload
/// was checked by the codec (well-formed, at most 32 levels deep, every string Unicode text), and every read here
/// checks the value's kind first: no call can throw on client input.
/// </summary>
internal static class PayloadArgs
{
    /// <summary>Parses the payload as a JSON object; null when there is none or it is not an object.</summary>
    public static JsonDocument? Parse(InboundFrame frame)
    {
        if (frame.PayloadKind != PayloadKind.Json)
        {
            return null;
        }

        var document = JsonDocument.Parse(frame.Payload);
        if (document.RootElement.ValueKind == JsonValueKind.Object)
        {
            return document;
        }

        document.Dispose();
        return null;
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
