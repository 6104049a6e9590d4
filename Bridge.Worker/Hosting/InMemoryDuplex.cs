using System.IO.Pipelines;

namespace Bridge.Worker.Hosting;

/// <summary>
/// Two connected in-memory streams (what one writes, the other reads), over two <see cref="Pipe"/>s: the join warm-up's
/// WebSocket pair (<see cref="JoinWarmUp"/>), a socket's byte path without a socket, a port or a token.
/// </summary>
internal static class InMemoryDuplex
{
    /// <summary>The two ends; disposing one ends the other's reads (end of stream).</summary>
    public static (Stream First, Stream Second) CreatePair()
    {
        var (one, two) = (new Pipe(), new Pipe());
        return (new End(one.Reader, two.Writer), new End(two.Reader, one.Writer));
    }

    private sealed class End(PipeReader input, PipeWriter output) : Stream
    {
        private readonly Stream _reads = input.AsStream();
        private readonly Stream _writes = output.AsStream();

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            _reads.ReadAsync(buffer, cancellationToken);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            _reads.ReadAsync(buffer, offset, count, cancellationToken);

        public override int Read(byte[] buffer, int offset, int count) => _reads.Read(buffer, offset, count);

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) =>
            _writes.WriteAsync(buffer, cancellationToken);

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            _writes.WriteAsync(buffer, offset, count, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => _writes.Write(buffer, offset, count);

        public override Task FlushAsync(CancellationToken cancellationToken) => _writes.FlushAsync(cancellationToken);

        public override void Flush() => _writes.Flush();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _writes.Dispose();
                _reads.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
