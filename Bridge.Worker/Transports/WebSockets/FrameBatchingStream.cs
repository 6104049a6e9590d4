using System.Buffers;
using Microsoft.AspNetCore.Http.Features;

namespace Bridge.Worker.Transports.WebSockets;

/// <summary>
/// The upgraded connection's stream under a server WebSocket, able to hold several frames and write them to the
/// socket at once. Kestrel's upgraded stream flushes on every write and <c>ManagedWebSocket</c> writes each frame
/// once, so a backlog (a replay, a burst) cost one flush per frame; between <see cref="BeginBatch"/> and
/// <see cref="EndBatchAsync"/> the frames written are held in a pooled buffer (taken on use, returned after each
/// flush: an idle socket holds none) and go out together. Outside a batch every write goes straight through.
/// </summary>
/// <remarks>
/// <c>ManagedWebSocket</c> writes one frame at a time under its own send lock (data, pings, pongs, close) and awaits each
/// write, so the writes reach this stream in frame order; a write (held or gone through) and a flush of the batch are
/// ordered by <see cref="_writes"/>, the one lock over the batch's buffer, so bytes reach the socket in the order they
/// were written. Only the send loop begins a batch and reads <see cref="Buffered"/> (a flush threshold).
/// </remarks>
internal sealed class FrameBatchingStream(Stream inner) : Stream
{
    // A batch's first buffer; it doubles as frames are added.
    private const int FirstBuffer = 16 * 1024;

    // One lock per connection (an idle socket's memory, docs/benchmarks.md): the buffer and the count are only
    // touched under it; _batching is set by the send loop and read under it.
    private readonly SemaphoreSlim _writes = new(1, 1);
    private byte[]? _buffer;
    private int _count;
    private volatile bool _batching;

    // Set under _writes once ManagedWebSocket wrote a close frame: no message is framed here after it.
    private volatile bool _closeWritten;

    /// <summary>Bytes held by the current batch, not written yet (a ping held meanwhile may be missed: a threshold, not a total).</summary>
    public int Buffered => Volatile.Read(ref _count);

    /// <summary>From now on, frames written are held until <see cref="FlushBatchAsync"/> or <see cref="EndBatchAsync"/>.</summary>
    public void BeginBatch() => _batching = true;

    /// <summary>Writes what the batch holds to the socket; the batch goes on.</summary>
    public ValueTask FlushBatchAsync(CancellationToken cancellationToken) => WriteHeldAsync(endBatch: false, cancellationToken);

    /// <summary>Writes what the batch holds to the socket and ends the batch: later writes go straight through.</summary>
    public ValueTask EndBatchAsync(CancellationToken cancellationToken) => WriteHeldAsync(endBatch: true, cancellationToken);

    private async ValueTask WriteHeldAsync(bool endBatch, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            var (held, count) = (_buffer, _count);
            _buffer = null;
            Volatile.Write(ref _count, 0);
            _batching &= !endBatch;

            if (held is not null)
            {
                try
                {
                    await inner.WriteAsync(held.AsMemory(0, count), cancellationToken);
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(held);
                }
            }
        }
        finally
        {
            _writes.Release();
        }
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // A batch's frame is only copied: held synchronously when the lock is free (a send loop's frames, one by one).
        if (_batching && _writes.Wait(0, CancellationToken.None))
        {
            try
            {
                NoteClose(buffer.Span);
                if (_batching)
                {
                    Hold(buffer.Span);
                    return default;
                }
            }
            finally
            {
                _writes.Release();
            }
        }

        return WriteLockedAsync(buffer, cancellationToken);
    }

    private async ValueTask WriteLockedAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        await _writes.WaitAsync(cancellationToken);
        try
        {
            NoteClose(buffer.Span);
            if (_batching)
            {
                Hold(buffer.Span);
            }
            else
            {
                await inner.WriteAsync(buffer, cancellationToken);
            }
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// Holds a whole server-to-client WebSocket message (one final, unmasked frame of RFC 6455 §5.2, no extension: the
    /// endpoint negotiates none) in the current batch, framed here rather than by <c>ManagedWebSocket</c>: false, and
    /// nothing held, when no batch is open or a write holds the lock (the caller then sends through the socket). Only the
    /// send loop calls it, between its checks of the socket's state; the socket's own frames (pings, pongs, close) come
    /// through <see cref="WriteAsync(ReadOnlyMemory{byte}, CancellationToken)"/> whole, under the same lock, so frames
    /// never interleave.
    /// </summary>
    public bool TryHoldMessage(ReadOnlySpan<byte> payload, bool text)
    {
        if (!_batching || _closeWritten || !_writes.Wait(0, CancellationToken.None))
        {
            return false;
        }

        try
        {
            // Nothing after a close frame (RFC 6455 §5.5.1): ManagedWebSocket may send one from its receive path (a
            // client's protocol error) between the send loop's state check and this call.
            if (!_batching || _closeWritten)
            {
                return false;
            }

            Span<byte> header = stackalloc byte[MaxHeader];
            Hold(header[..WriteHeader(header, payload.Length, text)], payload);
            return true;
        }
        finally
        {
            _writes.Release();
        }
    }

    // Called under _writes: ManagedWebSocket writes each frame, header and payload, in one call, so a write whose first
    // byte carries the close opcode (0x8) is a close frame.
    private void NoteClose(ReadOnlySpan<byte> frame)
    {
        if (!frame.IsEmpty && (frame[0] & 0x0F) == 0x8)
        {
            _closeWritten = true;
        }
    }

    // FIN and the opcode, then the payload length in 7 bits, or 126 and 16 bits, or 127 and 64 bits (network order).
    private const int MaxHeader = 10;

    internal static int WriteHeader(Span<byte> header, int length, bool text)
    {
        header[0] = (byte)(0x80 | (text ? 0x1 : 0x2));
        if (length < 126)
        {
            header[1] = (byte)length;
            return 2;
        }

        if (length <= ushort.MaxValue)
        {
            header[1] = 126;
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(header[2..], (ushort)length);
            return 4;
        }

        header[1] = 127;
        System.Buffers.Binary.BinaryPrimitives.WriteUInt64BigEndian(header[2..], (ulong)length);
        return 10;
    }

    // Called under _writes.
    private void Hold(ReadOnlySpan<byte> bytes) => Hold(bytes, []);

    // Called under _writes: the two parts, one after the other.
    private void Hold(ReadOnlySpan<byte> bytes, ReadOnlySpan<byte> more)
    {
        var total = bytes.Length + more.Length;
        if (_buffer is null || _buffer.Length - _count < total)
        {
            var larger = ArrayPool<byte>.Shared.Rent(Math.Max(FirstBuffer, Math.Max(_count + total, (_buffer?.Length ?? 0) * 2)));
            if (_buffer is not null)
            {
                _buffer.AsSpan(0, _count).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(_buffer);
            }

            _buffer = larger;
        }

        bytes.CopyTo(_buffer.AsSpan(_count));
        more.CopyTo(_buffer.AsSpan(_count + bytes.Length));
        Volatile.Write(ref _count, _count + total);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => inner.ReadAsync(buffer, offset, count, cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override void Flush() => inner.Flush();

    public override bool CanRead => inner.CanRead;

    public override bool CanWrite => inner.CanWrite;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
            ReturnHeld();
        }

        base.Dispose(disposing);
    }

    // Only when no write holds the lock: a buffer a write may still be filling is left to the GC, never pooled again.
    private void ReturnHeld()
    {
        if (!_writes.Wait(0))
        {
            return;
        }

        try
        {
            if (_buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                (_buffer, _count) = (null, 0);
            }
        }
        finally
        {
            _writes.Release();
        }
    }

    /// <summary>
    /// Puts a <see cref="FrameBatchingStream"/> under the WebSockets of <paramref name="path"/> (HTTP/1.1 upgrades): must
    /// run before <c>UseWebSockets</c>, which takes the upgrade feature when a request arrives. The endpoint finds the
    /// stream with <see cref="Of"/> once the socket is accepted (none over HTTP/2).
    /// </summary>
    public static void UseUnder(IApplicationBuilder app, PathString path) =>
        app.Use((context, next) =>
        {
            if (context.Request.Path == path && context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true } upgrade)
            {
                context.Features.Set<IHttpUpgradeFeature>(new Upgrade(upgrade));
            }

            return next(context);
        });

    /// <summary>The stream under the request's accepted WebSocket; null when there is none (not upgraded, or HTTP/2).</summary>
    public static FrameBatchingStream? Of(HttpContext context) => (context.Features.Get<IHttpUpgradeFeature>() as Upgrade)?.Stream;

    // Keeps the stream itself rather than adding a feature: a request's extra features cost a list per connection.
    private sealed class Upgrade(IHttpUpgradeFeature upgrade) : IHttpUpgradeFeature
    {
        public FrameBatchingStream? Stream { get; private set; }

        public bool IsUpgradableRequest => upgrade.IsUpgradableRequest;

        public async Task<Stream> UpgradeAsync() => Stream = new FrameBatchingStream(await upgrade.UpgradeAsync());
    }
}
