using System.Buffers;
using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Handlers;
using Bridge.Worker.Operations;

namespace Bridge.Worker.Transports.WebSockets;

/// <summary>
/// Pumps one WebSocket: a receive loop that decodes and dispatches frames, and a send loop that drains the
/// session's bounded queue. Whatever ends first asks the session to close; the close frame is then written
/// with a timeout, after which the socket is aborted. With a batch subprotocol (<paramref name="batched"/>) the send loop
/// puts the frames queued when the socket is free into one message, an array of envelopes (<see cref="EnvelopeBatch"/>).
/// </summary>
internal sealed partial class WebSocketConnection(
    WebSocket socket,
    FrameBatchingStream? batching,
    ClientSession session,
    bool batched,
    FrameDispatcher dispatcher,
    ConnectionOptions options,
    BridgeMetrics metrics,
    TimeProvider time,
    ILogger<WebSocketConnection> logger,
    CancellationToken stopping)
{
    // Small first buffer: most frames are small; it grows (up to the frame limit) only for larger ones.
    private const int InitialReceiveBuffer = 4096;

    // Bytes of frames held between socket writes while the queue drains (as SSE's FlushEvery): small enough that a
    // client that stops reading backs up into the bounded queue, not into this batch.
    private const int FlushEvery = 32 * 1024;

    // The first byte of a close frame: FIN and opcode 8 (RFC 6455 §5.2).
    private const byte CloseFrameStart = 0x88;

    // A client's close frame: 2 header bytes, a 4-byte mask and at most 125 payload bytes (RFC 6455 §5.2, §5.5).
    private const int MaxCloseFrameBytes = 2 + 4 + 125;

    // What the linger after the WebSocket layer's own close reads at most: the frames already in flight before the
    // client read that close, then its answer. A client that goes on sending past this is cut off.
    internal const int LingerBytes = 64 * 1024;

    private ITimer? _abortTimer;

    /// <summary>Pumps the socket until the connection ends, then disposes it (the connection owns its socket).</summary>
    public async Task RunAsync(CancellationToken aborted)
    {
        using var owned = socket;
        LogOpened(session.ConnectionId, !batched ? session.Codec.Subprotocol
            : session.Codec.MessageType == WebSocketMessageType.Text ? Subprotocols.JsonBatch : Subprotocols.MessagePackBatch);
        // Once a close is requested, an unresponsive peer gets CloseTimeout to finish the handshake.
        using var armAbort = session.Closing.Register(static state => ((WebSocketConnection)state!).ArmAbortTimer(), this);
        var sending = SendLoopAsync(aborted);
        try
        {
            await ReceiveLoopAsync(aborted);
        }
        catch (WebSocketException ex) when (ex.WebSocketErrorCode == WebSocketError.Faulted && batching is not null)
        {
            // The WebSocket layer refused a frame (1007: a text frame that is not UTF-8; 1002: a protocol error),
            // sent its close and gave up the socket.
            await LingerAsync(batching, aborted);
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The peer vanished without a close handshake: a normal way for a connection to end.
        }
        catch (Exception ex)
        {
            LogReceiveFailed(ex, session.ConnectionId);
            session.RequestClose(CloseCodes.InternalError, "internal error");
        }
        finally
        {
            session.RequestClose(CloseCodes.Normal, "closed");
            await sending;
            var close = session.CloseRequested!;
            LogClosed(session.ConnectionId, close.Code, close.Reason);
            Volatile.Read(ref _abortTimer)?.Dispose();
        }
    }

    private void ArmAbortTimer() =>
        Volatile.Write(ref _abortTimer, time.CreateTimer(static s => ((WebSocket)s!).Abort(), socket, options.CloseTimeout, Timeout.InfiniteTimeSpan));

    private async Task ReceiveLoopAsync(CancellationToken aborted)
    {
        var max = options.MaxFrameBytes;
        while (socket.State is WebSocketState.Open or WebSocketState.CloseSent)
        {
            // Zero-byte read: an idle socket holds no receive buffer.
            var peek = await socket.ReceiveAsync(Memory<byte>.Empty, aborted);
            if (peek.MessageType == WebSocketMessageType.Close)
            {
                return;
            }

            if (peek.EndOfMessage)
            {
                // The zero-byte read took a whole message: an empty one. It is a frame like any other (rate limit,
                // then bad_frame), never swallowed.
                if (session.CloseRequested is null)
                {
                    await dispatcher.DispatchAsync(session, ReadOnlySpan<byte>.Empty, aborted);
                }

                continue;
            }

            var buffer = ArrayPool<byte>.Shared.Rent(InitialReceiveBuffer);
            try
            {
                var count = 0;
                while (true)
                {
                    if (count == buffer.Length)
                    {
                        var larger = ArrayPool<byte>.Shared.Rent(Math.Min(buffer.Length * 2, max + 1));
                        buffer.AsSpan(0, count).CopyTo(larger);
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = larger;
                    }

                    var result = await socket.ReceiveAsync(buffer.AsMemory(count, Math.Min(buffer.Length, max + 1) - count), aborted);
                    if (result.MessageType == WebSocketMessageType.Close)
                    {
                        return;
                    }

                    count += result.Count;
                    if (count > max)
                    {
                        LogFrameTooBig(session.ConnectionId, max);
                        session.RequestClose(CloseCodes.MessageTooBig, $"frame larger than {max} bytes");
                        await DrainUntilClosedAsync(buffer, aborted);
                        return;
                    }

                    if (result.EndOfMessage)
                    {
                        break;
                    }
                }

                if (session.CloseRequested is not null)
                {
                    // Closing: frames that arrive now are not acted on.
                    continue;
                }

                await dispatcher.DispatchAsync(session, buffer.AsSpan(0, count), aborted);
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>After refusing a frame, reads and discards until the peer answers the close (or is aborted).</summary>
    private async Task DrainUntilClosedAsync(byte[] scratch, CancellationToken aborted)
    {
        while (socket.State is WebSocketState.Open or WebSocketState.CloseSent)
        {
            var result = await socket.ReceiveAsync(scratch.AsMemory(), aborted);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return;
            }
        }
    }

    /// <summary>
    /// After the WebSocket layer's own close: reads and discards until the client answers the close or ends the
    /// connection, at most <see cref="LingerBytes"/> bytes and CloseTimeout, and never past the start of the host's
    /// shutdown (ApplicationStopping: the drain does not wait a CloseTimeout for a client that does not answer). Ending
    /// the connection at once would leave the client's next bytes (its close answer) unread, and the kernel answers
    /// those with a TCP reset that can overtake the close frame: the client would see 1006. Past the byte budget the
    /// connection ends anyway: only a client that keeps sending after the close meets that reset.
    /// </summary>
    private async Task LingerAsync(Stream stream, CancellationToken aborted)
    {
        using var timeout = new CancellationTokenSource(options.CloseTimeout, time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token, aborted, stopping);
        // The tail of what was read (a close frame split over reads) is kept at the start, the next read follows it.
        var scratch = ArrayPool<byte>.Shared.Rent(InitialReceiveBuffer);
        try
        {
            var kept = 0;
            var total = 0;
            int read;
            while (total < LingerBytes &&
                   (read = await stream.ReadAsync(scratch.AsMemory(kept, Math.Min(scratch.Length - kept, LingerBytes - total)), linked.Token)) > 0)
            {
                total += read;
                var seen = scratch.AsSpan(0, kept + read);
                if (EndsWithCloseFrame(seen))
                {
                    return;
                }

                kept = Math.Min(seen.Length, MaxCloseFrameBytes - 1);
                seen[^kept..].CopyTo(scratch);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(scratch);
        }
    }

    /// <summary>
    /// True when <paramref name="bytes"/> end with a whole masked close frame: the client's answer, the last frame it
    /// sends (RFC 6455 §5.5.1), whatever frames came before it in the same read. The linger starts wherever the
    /// WebSocket layer stopped reading, maybe inside a frame, so the frames before are not walked: the close is
    /// found from the end, one candidate per payload length. A data payload that happens to end the same way ends
    /// the linger early, which is harmless.
    /// </summary>
    internal static bool EndsWithCloseFrame(ReadOnlySpan<byte> bytes)
    {
        for (var length = 0; length <= 125 && 6 + length <= bytes.Length; length++)
        {
            var header = bytes[^(6 + length)..];
            if (header[0] == CloseFrameStart && header[1] == (0x80 | length) && length != 1)
            {
                return true;
            }
        }

        return false;
    }

    private async Task SendLoopAsync(CancellationToken aborted)
    {
        var reader = session.Queue.Reader;
        var type = session.Codec.MessageType;
        var text = type == WebSocketMessageType.Text;
        var sent = new SentMessages(metrics, session.Transport);
        // Batch mode: the frames read while the socket is free go out as one array message of at most FlushEvery bytes
        // (a larger envelope alone), never waiting for more: the message is sent once the queue is empty.
        var envelopes = batched ? new EnvelopeBatch(json: text, FlushEvery) : null;
        // The frames the array message holds: counted as sent (queue, stall check, drain signals, metrics) only once
        // the array is written, never while they sit in it.
        var held = batched ? new List<OutboundFrame>() : null;
        try
        {
            while (session.CloseRequested is null && await reader.WaitToReadAsync(session.Closing))
            {
                // Whatever is queued goes out in as few socket writes as FlushEvery allows; the batch ends before the
                // loop waits again, so a keep-alive ping written meanwhile is never held.
                batching?.BeginBatch();
                try
                {
                    while (session.CloseRequested is null && reader.TryRead(out var frame))
                    {
                        // A frame counts as sent once written to the socket or held by the batch (FlushEvery at most);
                        // the counters are updated per batch. An array's frames count once the array is written.
                        if (envelopes is null)
                        {
                            await WriteMessageAsync(frame.Bytes, type, text, aborted);
                            session.Queue.OnSent(frame);
                            sent.Add(frame);
                        }
                        else
                        {
                            if (!envelopes.TryAdd(frame.Bytes))
                            {
                                await WriteEnvelopesAsync(envelopes, type, text, aborted);
                                CountSent(held!, ref sent);
                                envelopes.TryAdd(frame.Bytes);
                            }

                            held!.Add(frame);
                        }

                        if (batching is null)
                        {
                            sent.Flush();
                        }
                        else if (batching.Buffered >= FlushEvery)
                        {
                            sent.Flush();
                            session.Queue.OnFlushStarted();
                            await batching.FlushBatchAsync(aborted);
                            session.Queue.OnFlushEnded();
                        }
                    }

                    // The queue is empty (or the connection closing): the array goes out, then its frames count as sent.
                    if (envelopes is { Count: > 0 })
                    {
                        await WriteEnvelopesAsync(envelopes, type, text, aborted);
                        CountSent(held!, ref sent);
                    }
                }
                finally
                {
                    envelopes?.Clear();
                    held?.Clear();
                    sent.Flush();
                    if (batching is not null)
                    {
                        // A flush blocked here (the client stopped reading) is a stall even with the queue empty.
                        session.Queue.OnFlushStarted();
                        await batching.EndBatchAsync(aborted);
                        session.Queue.OnFlushEnded();
                    }
                }
            }
        }
        catch (OperationCanceledException) when (session.Closing.IsCancellationRequested || aborted.IsCancellationRequested)
        {
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException)
        {
            session.RequestClose(CloseCodes.Normal, "connection lost");
            return;
        }

        await CloseAsync(aborted);
    }

    /// <summary>Counts the frames of the array just written as sent, and forgets them.</summary>
    private void CountSent(List<OutboundFrame> held, ref SentMessages sent)
    {
        foreach (var frame in held)
        {
            session.Queue.OnSent(frame);
            sent.Add(frame);
        }

        held.Clear();
    }

    /// <summary>Writes the composed array message, counts it, and starts the next one.</summary>
    private async ValueTask WriteEnvelopesAsync(EnvelopeBatch envelopes, WebSocketMessageType type, bool text, CancellationToken aborted)
    {
        await WriteMessageAsync(envelopes.Complete(), type, text, aborted);
        metrics.BatchSent(envelopes.Count);
        envelopes.Clear();
    }

    /// <summary>
    /// One whole WebSocket message: framed straight into the batch while the socket may send data (as ManagedWebSocket
    /// checks); otherwise (no batch, a ping holding the batch's lock, a closing socket) through the socket.
    /// </summary>
    private ValueTask WriteMessageAsync(ReadOnlyMemory<byte> payload, WebSocketMessageType type, bool text, CancellationToken aborted)
    {
        if (batching is not null && socket.State is (WebSocketState.Open or WebSocketState.CloseReceived) &&
            batching.TryHoldMessage(payload.Span, text))
        {
            return default;
        }

        // Through the socket only when the batch cannot take it: maybe waiting on a ping's write to a client that
        // stopped reading, so cancellable.
        return socket.SendAsync(payload, type, endOfMessage: true, aborted);
    }

    private async Task CloseAsync(CancellationToken aborted)
    {
        var request = session.CloseRequested ?? new CloseRequest(CloseCodes.Normal, "closed");
        if (socket.State is not (WebSocketState.Open or WebSocketState.CloseReceived))
        {
            return;
        }

        try
        {
            // Bounded by the abort timer armed when the close was requested.
            await socket.CloseOutputAsync((WebSocketCloseStatus)request.Code, request.Reason, aborted);
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    [LoggerMessage(EventId = 3001, Level = LogLevel.Debug, Message = "WebSocket {ConnectionId} opened ({Subprotocol})")]
    private partial void LogOpened(string connectionId, string subprotocol);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Debug, Message = "WebSocket {ConnectionId} closed with {CloseCode}: {Reason}")]
    private partial void LogClosed(string connectionId, int closeCode, string reason);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Information, Message = "WebSocket {ConnectionId} sent a frame over {MaxFrameBytes} bytes; closing with 1009")]
    private partial void LogFrameTooBig(string connectionId, int maxFrameBytes);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Error, Message = "WebSocket {ConnectionId} receive loop failed")]
    private partial void LogReceiveFailed(Exception exception, string connectionId);
}
