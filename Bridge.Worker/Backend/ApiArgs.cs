using System.Text;
using System.Text.Json;
using Bridge.Contracts;
using Bridge.Worker.Handlers;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Backend;

/// <summary>
/// Reads a request's JSON object field by field, each with its own rule, and refuses what breaks one with
/// <see cref="ErrorCodes.InvalidArgument"/> (or <see cref="ErrorCodes.InvalidRoom"/>, <see cref="ErrorCodes.MissingField"/>)
/// naming the field. Unknown fields are refused too (<see cref="EnsureNoOthers"/>): a typo must not be silently ignored.
/// Strings must be Unicode text (<see cref="UnicodeText"/>: UTF-8, no lone surrogates in escapes) without control characters.
/// </summary>
internal sealed class ApiArgs : IDisposable
{
    // The arguments are flat; nested values only occur in a payload, which the envelope decoder reads.
    private static readonly JsonDocumentOptions DocumentOptions = new() { MaxDepth = 64, AllowDuplicateProperties = false };

    private readonly JsonDocument _document;
    private readonly HashSet<string> _read = new(StringComparer.Ordinal);

    private ApiArgs(JsonDocument document) => _document = document;

    /// <summary>Parses the body; an empty body is an empty object.</summary>
    public static ApiArgs Parse(ReadOnlyMemory<byte> body)
    {
        if (body.IsEmpty)
        {
            return new ApiArgs(JsonDocument.Parse("{}"u8.ToArray()));
        }

        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(body, DocumentOptions);
        }
        catch (JsonException ex)
        {
            throw ApiException.Invalid(ErrorCodes.BadFrame, $"the body is not valid JSON: {ex.Message}");
        }
        catch (InvalidOperationException)
        {
            // A property name escaping a lone surrogate, met by the duplicate-name check while parsing.
            throw ApiException.Invalid(ErrorCodes.BadFrame, UnicodeText.InvalidMessage);
        }

        // The rule for all text entering Bridge (issue 12), once for the whole body: every string, names and payload
        // included, is UTF-8 without lone surrogates.
        var isObject = document.RootElement.ValueKind == JsonValueKind.Object;
        if (!isObject || !UnicodeText.HasOnlyUnicodeStrings(body.Span))
        {
            document.Dispose();
            throw ApiException.Invalid(ErrorCodes.BadFrame, isObject ? UnicodeText.InvalidMessage : "the body must be a JSON object");
        }

        return new ApiArgs(document);
    }

    public void Dispose() => _document.Dispose();

    /// <summary>Marks fields another reader handles (the envelope of a publish).</summary>
    public void Allow(params string[] names)
    {
        foreach (var name in names)
        {
            _read.Add(name);
        }
    }

    /// <summary>Refuses the request when it has a field no rule read.</summary>
    public void EnsureNoOthers()
    {
        foreach (var property in _document.RootElement.EnumerateObject())
        {
            if (!_read.Contains(property.Name))
            {
                throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"unknown field '{Shorten(property.Name)}'");
            }
        }
    }

    public string Room(string name = "room")
    {
        var room = Text(name, RoomName.MaxLength) ?? throw ApiException.Invalid(ErrorCodes.MissingField, $"field '{name}' is required");
        return RoomName.IsValid(room) ? room : throw ApiException.Invalid(ErrorCodes.InvalidRoom, RoomFrames.InvalidRoomMessage);
    }

    /// <summary>A user (a token's <c>sub</c>): 1-256 characters, no control characters.</summary>
    public string User()
    {
        var user = Text("user", Security.TokenValidator.MaxSubjectLength);
        return string.IsNullOrEmpty(user)
            ? throw ApiException.Invalid(ErrorCodes.MissingField, "field 'user' is required (a token's sub)")
            : user;
    }

    /// <summary>An optional string of at most <paramref name="maxUtf8Bytes"/> UTF-8 bytes without control characters.</summary>
    public string? Text(string name, int maxUtf8Bytes)
    {
        if (!TryGet(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be a string");
        }

        // Valid Unicode: Parse checked every string of the body.
        var text = value.GetString()!;
        if (Encoding.UTF8.GetByteCount(text) > maxUtf8Bytes || text.Any(char.IsControl))
        {
            throw ApiException.Invalid(ErrorCodes.InvalidArgument,
                $"field '{name}' must be at most {maxUtf8Bytes} bytes of UTF-8 text without control characters");
        }

        return text;
    }

    public ulong? UInt64(string name)
    {
        if (!TryGet(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetUInt64(out var number)
            ? number
            : throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be an integer from 0 to {ulong.MaxValue}");
    }

    public int? Int(string name, int min, int max)
    {
        if (!TryGet(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        return value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out var number) && number >= min && number <= max
            ? number
            : throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be an integer from {min} to {max}");
    }

    /// <summary>A required array of 1 to <paramref name="max"/> distinct, valid room names.</summary>
    public List<string> Rooms(string name, int max)
    {
        if (!TryGet(name, out var value) || value.ValueKind == JsonValueKind.Null)
        {
            throw ApiException.Invalid(ErrorCodes.MissingField, $"field '{name}' is required (an array of rooms)");
        }

        if (value.ValueKind != JsonValueKind.Array || value.GetArrayLength() is 0 || value.GetArrayLength() > max)
        {
            throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"field '{name}' must be an array of 1 to {max} rooms");
        }

        var rooms = new List<string>(value.GetArrayLength());
        var seen = new HashSet<string>(StringComparer.Ordinal);
        foreach (var item in value.EnumerateArray())
        {
            var room = item.ValueKind == JsonValueKind.String ? item.GetString() : null;
            if (!RoomName.IsValid(room))
            {
                throw ApiException.Invalid(ErrorCodes.InvalidRoom, $"{name}[{rooms.Count}]: {RoomFrames.InvalidRoomMessage}");
            }

            if (!seen.Add(room!))
            {
                throw ApiException.Invalid(ErrorCodes.InvalidArgument, $"room '{room}' is listed twice in '{name}'");
            }

            rooms.Add(room!);
        }

        return rooms;
    }

    private bool TryGet(string name, out JsonElement value)
    {
        _read.Add(name);
        return _document.RootElement.TryGetProperty(name, out value);
    }

    private static string Shorten(string name)
    {
        var printable = new string([.. name.Take(64).Select(c => c is >= ' ' and <= '~' ? c : '?')]);
        return name.Length <= 64 ? printable : printable + "...";
    }
}
