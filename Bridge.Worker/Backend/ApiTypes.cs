using System.Text.Json;
using System.Text.Json.Serialization;

namespace Bridge.Worker.Backend;

/// <summary>
/// Who called the API: the rate limit's partition (<see cref="Name"/>), the default <c>from</c> of what it publishes
/// (<see cref="From"/>) and how it came in (<c>api_key</c>, <c>admin_token</c> or <c>nats</c>, a metric label).
/// </summary>
internal sealed record ApiCaller(string Name, string From, string Via)
{
    /// <summary>Every request over NATS: the NATS account's permissions authorized it (docs/security.md).</summary>
    public static readonly ApiCaller Nats = new("nats", "backend", "nats");
}

/// <summary>A refused request: the HTTP status, and the <c>{code, message}</c> body both adapters answer.</summary>
internal sealed class ApiException(int status, string code, string message, TimeSpan? retryAfter = null) : Exception(message)
{
    public int Status { get; } = status;

    public string Code { get; } = code;

    public TimeSpan? RetryAfter { get; } = retryAfter;

    public static ApiException Invalid(string code, string message) => new(StatusCodes.Status400BadRequest, code, message);
}

/// <summary>An answer: status (HTTP, or the <c>Bridge-Status</c> header over NATS), JSON body, and a wait for 429s.</summary>
internal readonly record struct ApiReply(int Status, byte[] Body, TimeSpan? RetryAfter = null);

/// <summary>A complete JSON value written as it is (a stored message's envelope in a history page).</summary>
[JsonConverter(typeof(RawJsonConverter))]
internal sealed record RawJson(byte[] Utf8);

internal sealed class RawJsonConverter : JsonConverter<RawJson>
{
    public override RawJson Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        using var document = JsonDocument.ParseValue(ref reader);
        return new RawJson(JsonSerializer.SerializeToUtf8Bytes(document.RootElement));
    }

    public override void Write(Utf8JsonWriter writer, RawJson value, JsonSerializerOptions options) =>
        writer.WriteRawValue(value.Utf8, skipInputValidation: true);
}

/// <summary>The one JSON setting of the API's answers: snake_case names, nulls left out.</summary>
internal static class ApiJson
{
    public static readonly JsonSerializerOptions Options = new()
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
        // Answers are application/json for programs, never embedded in HTML: '+' and non-ASCII stay as they are.
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    };

    public static byte[] Serialize<T>(T value) => JsonSerializer.SerializeToUtf8Bytes(value, Options);

    public static T? Deserialize<T>(ReadOnlySpan<byte> json) => JsonSerializer.Deserialize<T>(json, Options);

    /// <summary>The problem body every refusal has: <c>{code, message}</c>, as an <c>error</c> frame's payload.</summary>
    public static byte[] Problem(string code, string message) =>
        JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string> { ["code"] = code, ["message"] = message }, Options);
}
