using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Bridge.Worker.Publishing;
using Bridge.Worker.Security;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Transports.Http;

/// <summary>
/// <c>POST /api/rooms/{room}/messages</c>: publish for one-way transports (SSE, long-poll) and for backends
/// without a NATS client. The body is one envelope (<c>type</c>, <c>id</c>, <c>payload</c>) in either wire format, by
/// its <c>Content-Type</c> (<see cref="ContentTypes.BodyFormatOf"/>; else 415): a JSON object, decoded as a
/// <c>bridge.v1.json</c> frame, or a MessagePack map, decoded as a <c>bridge.v1.msgpack</c> frame (its payload stored
/// as sent). The same rules as a WebSocket publish apply (<see cref="PublishService"/>). Answers <c>{id, seq, duplicate}</c>.
/// </summary>
internal sealed class PublishEndpoint(PublishService publishing, ConnectionAdmission admission, IOptions<ConnectionOptions> options)
{
    public const string Pattern = "/api/rooms/{room}/messages";

    /// <summary>The message of the <c>bad_frame</c> refusal of an empty body.</summary>
    public const string EmptyBody = "the body is empty: send one JSON object (or MessagePack map) with at least 'type'";

    public async Task<IResult> HandleAsync(HttpContext context, string room)
    {
        var (identity, refusal) = await admission.AuthenticateAsync(context);
        if (identity is null)
        {
            return refusal!;
        }

        var contentType = context.Request.ContentType;
        if (ContentTypes.BodyFormatOf(contentType) is not { } format)
        {
            return HttpErrors.UnsupportedMediaType(contentType);
        }

        if (HttpErrors.UnsupportedEncoding(context.Request) is { } encoding)
        {
            return encoding;
        }

        var max = options.Value.MaxFrameBytes;
        if (await HttpBodies.ReadAsync(context.Request, max, context.RequestAborted) is not { } body)
        {
            return HttpErrors.Problem(StatusCodes.Status413PayloadTooLarge, ErrorCodes.BadFrame, $"body larger than {max} bytes");
        }

        if (FrameCodecs.IsEmptyBody(body.Span, format))
        {
            return HttpErrors.Problem(StatusCodes.Status400BadRequest, ErrorCodes.BadFrame, EmptyBody);
        }

        var decoded = FrameCodecs.Of(format).Decode(body.Span, out var error);
        if (decoded is null)
        {
            return HttpErrors.Problem(StatusCodes.Status400BadRequest, ErrorCodes.BadFrame, error.Message);
        }

        if (decoded.Room is not null && decoded.Room != room)
        {
            return HttpErrors.Problem(StatusCodes.Status400BadRequest, ErrorCodes.InvalidRoom, "the body's room differs from the URL's");
        }

        var frame = new InboundFrame
        {
            Type = decoded.Type,
            Room = room,
            Id = decoded.Id,
            PayloadKind = decoded.PayloadKind,
            Payload = decoded.Payload,
        };
        var outcome = await publishing.PublishAsync(frame, room, identity, identity.Subject, "http", context.TraceIdentifier, context.RequestAborted);
        return outcome.Status switch
        {
            PublishStatus.Stored => Results.Json(new Dictionary<string, object?> { ["id"] = frame.Id, ["seq"] = outcome.Seq, ["duplicate"] = outcome.Duplicate }),
            PublishStatus.Invalid => HttpErrors.Problem(StatusCodes.Status400BadRequest, outcome.Code, outcome.Message),
            PublishStatus.Forbidden => HttpErrors.Problem(StatusCodes.Status403Forbidden, outcome.Code, outcome.Message),
            _ => HttpErrors.Problem(StatusCodes.Status503ServiceUnavailable, outcome.Code, outcome.Message),
        };
    }
}
