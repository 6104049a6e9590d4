using System.Text.Json;

namespace Bridge.Worker.Protocol;

/// <summary>Arguments of a control frame, read from its JSON payload (a msgpack payload arrives here as JSON too).</summary>
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
}
