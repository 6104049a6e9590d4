using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text.Json;
using Bridge.Client.Protocol;
using Bridge.Contracts;

namespace Bridge.Client;

public sealed partial class BridgeClient
{
    /// <summary>
    /// Publishes <paramref name="payload"/> (serialized as JSON with <see cref="BridgeClientOptions.JsonSerializerOptions"/>)
    /// to <paramref name="room"/> as a message of <paramref name="type"/>, and completes with the <see cref="Ack"/>
    /// once the server stored it. The <paramref name="id"/> (1-64 printable ASCII characters; 22 random base64url
    /// characters when not given) is reused for every retry, so a publish is stored once (docs/protocol.md §9). While
    /// disconnected, publishes wait in a bounded queue (<see cref="BridgeClientOptions.MaxQueuedPublishes"/>) and are
    /// sent in order on reconnect, paced within the frame rate limit the worker announces in <c>welcome</c>; they are
    /// stored in call order (one refused <c>rate_limited</c> or <c>publish_failed</c> is retried before any later one is
    /// sent; see the README for the one exception). Cancelling stops the wait, and drops the publish if the server
    /// cannot have stored it (never sent, or refused <c>rate_limited</c> every time, also by an answer that comes after the
    /// cancellation); one that may have been stored is still sent until it is acked.
    /// </summary>
    /// <exception cref="ArgumentException">The room name or <paramref name="type"/> is malformed, <paramref name="type"/>
    /// is reserved (docs/protocol.md §2), or <paramref name="id"/> is not a valid id.</exception>
    /// <exception cref="BridgeException">Client-side: <c>frame_too_big</c> (over <see cref="BridgeClientOptions.MaxFrameBytes"/>,
    /// or over the worker's smaller <c>maxFrameBytes</c> from its <c>welcome</c>: never sent, since the worker would close
    /// the connection with 1009; a publish queued before the welcome fails when it is due, the publishes behind it
    /// going out as usual), <c>queue_full</c>, <c>duplicate_id</c> (a publish with this id is still waiting), or the code the client closed
    /// with (<c>unauthorized</c>, <c>closed</c>). From the server: its error code (<c>forbidden</c>, <c>invalid_type</c>...,
    /// <c>publish_failed</c> after <see cref="BridgeClientOptions.MaxPublishAttempts"/> tries, or <c>rate_limited</c> after 20
    /// refusals, which do not count as tries).</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> was cancelled.</exception>
    /// <exception cref="ObjectDisposedException">The client was disposed.</exception>
    /// <exception cref="NotSupportedException"><paramref name="payload"/> cannot be serialized as JSON.</exception>
    public Task<Ack> PublishAsync<T>(string room, string type, T payload, string? id = null, CancellationToken cancellationToken = default) =>
        PublishCoreAsync(room, type, JsonSerializer.SerializeToUtf8Bytes(payload, _options.JsonSerializerOptions), null, id, cancellationToken);

    /// <summary>
    /// Publishes a binary <paramref name="payload"/> (sent as <c>enc: base64</c> in JSON, <c>bin</c> in MessagePack;
    /// delivered as <see cref="BridgeMessage.BinaryPayload"/>); otherwise as <see cref="PublishAsync{T}"/>, with the
    /// same exceptions.
    /// </summary>
    public Task<Ack> PublishBinaryAsync(string room, string type, ReadOnlyMemory<byte> payload, string? id = null, CancellationToken cancellationToken = default) =>
        PublishCoreAsync(room, type, null, payload, id, cancellationToken);

    /// <summary>
    /// Publishes one MessagePack value as the payload. On a <see cref="BridgeFormat.MessagePack"/> connection it is
    /// sent and stored as it is, and MessagePack members receive these bytes unchanged (extension types such as
    /// timestamps included, <see cref="BridgeMessage.MessagePackPayload"/>); JSON members receive its JSON rendering.
    /// On a JSON connection the rendering is what is sent. Otherwise as <see cref="PublishAsync{T}"/>, with the same
    /// exceptions.
    /// </summary>
    /// <exception cref="ArgumentException">Also: <paramref name="payload"/> is not one MessagePack value the gateway
    /// stores (<see cref="PayloadTranscoder.CheckMessagePack(ReadOnlyMemory{byte})"/>: depth, UTF-8 strings, string
    /// keys unique per map, no NaN, well-formed timestamps), or is a top-level <c>bin</c> (use
    /// <see cref="PublishBinaryAsync"/>).</exception>
    public Task<Ack> PublishMessagePackAsync(string room, string type, ReadOnlyMemory<byte> payload, string? id = null, CancellationToken cancellationToken = default)
    {
        if (PayloadTranscoder.CheckMessagePack(payload) is { } problem)
        {
            throw new ArgumentException($"the payload cannot be published: {problem}", nameof(payload));
        }

        if (new MessagePack.MessagePackReader(payload).NextMessagePackType == MessagePack.MessagePackType.Binary)
        {
            throw new ArgumentException("a top-level bin is a binary payload: use PublishBinaryAsync", nameof(payload));
        }

        return PublishCoreAsync(room, type, null, null, id, cancellationToken, payload);
    }

    private async Task<Ack> PublishCoreAsync(
        string room, string type, byte[]? json, ReadOnlyMemory<byte>? binary, string? id, CancellationToken ct, ReadOnlyMemory<byte>? messagePack = null)
    {
        if (!RoomName.IsValid(room))
        {
            throw new ArgumentException($"'{room}' is not a valid room name", nameof(room));
        }

        if (!MessageTypes.IsValid(type) || MessageTypes.IsReserved(type))
        {
            throw new ArgumentException($"'{type}' cannot be published (malformed or reserved, docs/protocol.md §2)", nameof(type));
        }

        id ??= NewPublishId();
        if (!MessageId.IsValid(id))
        {
            throw new ArgumentException("an id is 1-64 printable ASCII characters without spaces", nameof(id));
        }

        var frame = FrameCodec.Encode(new OutboundFrame(type, room, id, json, binary, messagePack), _options.Format);
        ThrowIfClosed();
        var publish = new PendingPublish(room, id, frame);
        _outbox.Add(publish);
        try
        {
            return await publish.Acked.WaitAsync(ct).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
            _outbox.CancelUnsent(publish);
            throw;
        }
    }

    /// <summary>16 random bytes, base64url (22 characters): unique without coordination, so a retry is recognised.</summary>
    private static string NewPublishId() => Base64Url.EncodeToString(RandomNumberGenerator.GetBytes(16));
}
