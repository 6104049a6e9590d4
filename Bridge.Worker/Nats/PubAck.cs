using System.Buffers;
using System.Text.Json;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

/// <summary>
/// The stream's answer to one publish, read from the reply's raw bytes: <c>{"stream":"ROOMS","seq":7}</c> (with
/// <c>"duplicate":true</c> for a retry within the duplicate window), <c>{"error":{"code":…,"err_code":…,
/// "description":…}}</c> when the stream refuses it, or an empty reply with status 503 when no stream takes the
/// subject. Anything else is a failure too, never an exception out of <see cref="Read"/>.
/// </summary>
internal readonly record struct PubAck(ulong Seq, bool Duplicate, Exception? Error)
{
    public static PubAck Failure(Exception error) => new(0, false, error);

    public static PubAck Read(ReadOnlySequence<byte>? headers, ReadOnlySequence<byte> payload)
    {
        if (headers is { } h && Status(h) is { } status)
        {
            return Failure(status == 503
                ? new NatsNoRespondersException()
                : new NatsException($"the stream answered the publish with status {status}"));
        }

        try
        {
            var reader = new Utf8JsonReader(payload);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject)
            {
                return Unreadable();
            }

            ulong seq = 0;
            var duplicate = false;
            ApiError? error = null;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                if (reader.ValueTextEquals("seq"u8))
                {
                    reader.Read();
                    if (!reader.TryGetUInt64(out seq))
                    {
                        return Unreadable();
                    }
                }
                else if (reader.ValueTextEquals("duplicate"u8))
                {
                    reader.Read();
                    duplicate = reader.TokenType == JsonTokenType.True;
                }
                else if (reader.ValueTextEquals("error"u8))
                {
                    reader.Read();
                    error = ReadError(ref reader);
                }
                else
                {
                    reader.Read();
                    reader.Skip();
                }
            }

            return error is not null ? Failure(new NatsJSApiException(error))
                : seq > 0 ? new PubAck(seq, duplicate, null)
                : Unreadable();
        }
        catch (JsonException)
        {
            return Unreadable();
        }
        catch (InvalidOperationException)
        {
            return Unreadable(); // a field of the wrong kind
        }
    }

    private static PubAck Unreadable() => Failure(new NatsException("the stream's answer to the publish could not be read"));

    private static ApiError ReadError(ref Utf8JsonReader reader)
    {
        var error = new ApiError();
        if (reader.TokenType != JsonTokenType.StartObject)
        {
            reader.Skip();
            return error;
        }

        while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
        {
            if (reader.ValueTextEquals("code"u8) && reader.Read() && reader.TryGetInt32(out var code))
            {
                error.Code = code;
            }
            else if (reader.ValueTextEquals("err_code"u8) && reader.Read() && reader.TryGetInt32(out var errCode))
            {
                error.ErrCode = errCode;
            }
            else if (reader.ValueTextEquals("description"u8) && reader.Read() && reader.TokenType == JsonTokenType.String)
            {
                error.Description = reader.GetString() ?? "";
            }
            else
            {
                if (reader.TokenType == JsonTokenType.PropertyName)
                {
                    reader.Read();
                }

                reader.Skip();
            }
        }

        return error;
    }

    // "NATS/1.0 503\r\n..." or "NATS/1.0 503 No Responders\r\n...": the status code, or null for headers without one.
    private static int? Status(ReadOnlySequence<byte> headers)
    {
        Span<byte> line = stackalloc byte[16];
        var length = (int)Math.Min(headers.Length, line.Length);
        headers.Slice(0, length).CopyTo(line);
        line = line[..length];
        return line.StartsWith("NATS/1.0 "u8) && line.Length >= 12 &&
               System.Buffers.Text.Utf8Parser.TryParse(line[9..12], out int code, out var consumed) && consumed == 3
            ? code
            : null;
    }
}
