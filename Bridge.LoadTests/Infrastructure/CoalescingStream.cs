namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// A client connection's stream that can hold what is written (whole WebSocket frames: the socket's sends are
/// serialized) and write it to the socket in one write when released: a publisher that has several frames ready sends
/// them in one socket write, as the worker writes several acks in one (<c>FrameBatchingStream</c>). The frames are the
/// same, each masked and framed by the WebSocket layer; only the socket writes are fewer. Everything else (reads, writes
/// while not holding: pongs, the close) passes through; writes to the socket never overlap.
/// </summary>
internal sealed class CoalescingStream(Stream inner) : Stream
{
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _write = new(1, 1);
    private byte[] _held = new byte[16 * 1024];
    private byte[] _spare = new byte[16 * 1024];
    private int _count;
    private bool _holding;

    /// <summary>Bytes held now.</summary>
    public int Held
    {
        get
        {
            lock (_lock)
            {
                return _count;
            }
        }
    }

    /// <summary>From now on, writes are held until <see cref="ReleaseAsync"/>.</summary>
    public void Hold()
    {
        lock (_lock)
        {
            _holding = true;
        }
    }

    /// <summary>Stops holding and writes what was held, in one socket write.</summary>
    public async ValueTask ReleaseAsync(CancellationToken cancellationToken)
    {
        byte[] held;
        int count;
        lock (_lock)
        {
            _holding = false;
            if (_count == 0)
            {
                return;
            }

            (held, count) = (_held, _count);
            (_held, _spare, _count) = (_spare, held, 0);
        }

        await WriteInnerAsync(held.AsMemory(0, count), cancellationToken);
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        lock (_lock)
        {
            if (_holding)
            {
                if (_count + buffer.Length > _held.Length)
                {
                    Array.Resize(ref _held, Math.Max(_held.Length * 2, _count + buffer.Length));
                }

                buffer.Span.CopyTo(_held.AsSpan(_count));
                _count += buffer.Length;
                return;
            }
        }

        await WriteInnerAsync(buffer, cancellationToken);
    }

    private async ValueTask WriteInnerAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        await _write.WaitAsync(cancellationToken);
        try
        {
            await inner.WriteAsync(buffer, cancellationToken);
        }
        finally
        {
            _write.Release();
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) => WriteAsync(buffer, offset, count).GetAwaiter().GetResult();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => inner.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        inner.ReadAsync(buffer, offset, count, cancellationToken);

    public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

    public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

    public override void Flush() => inner.Flush();

    public override bool CanRead => inner.CanRead;

    public override bool CanSeek => false;

    public override bool CanWrite => inner.CanWrite;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            inner.Dispose();
            _write.Dispose();
        }

        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await inner.DisposeAsync();
        _write.Dispose();
        await base.DisposeAsync();
    }

    /// <summary>An invoker whose one connection's stream is a <see cref="CoalescingStream"/>, handed to <paramref name="connected"/>.</summary>
    public static HttpMessageInvoker Invoker(Action<CoalescingStream> connected) => new(new SocketsHttpHandler
    {
        ConnectCallback = async (context, cancellationToken) =>
        {
            var socket = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                var stream = new CoalescingStream(new System.Net.Sockets.NetworkStream(socket, ownsSocket: true));
                connected(stream);
                return stream;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        },
    });
}
