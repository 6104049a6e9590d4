using Bridge.LoadTests.Infrastructure;

namespace Bridge.Tests.Unit;

/// <summary>
/// The ingest clients' connection stream (<see cref="CoalescingStream"/>, "Ingest, tenth session"): frames written
/// while it holds go to the socket in one write, in order, when released; other writes pass through at once.
/// </summary>
public sealed class CoalescingStreamTests
{
    [Fact]
    public async Task Held_frames_go_out_in_one_write_in_order_and_writes_pass_through_when_not_holding()
    {
        var socket = new RecordingStream();
        await using var stream = new CoalescingStream(socket);

        await stream.WriteAsync("handshake"u8.ToArray());
        stream.Hold();
        await stream.WriteAsync("frame-1|"u8.ToArray());
        await stream.WriteAsync("frame-2|"u8.ToArray());
        Assert.Equal(["handshake"], socket.Writes);
        Assert.Equal(16, stream.Held);

        await stream.ReleaseAsync(CancellationToken.None);
        await stream.WriteAsync("pong"u8.ToArray());
        await stream.ReleaseAsync(CancellationToken.None); // nothing held: no write

        Assert.Equal(["handshake", "frame-1|frame-2|", "pong"], socket.Writes);
        Assert.Equal(0, stream.Held);

        // More than its first buffer holds: it grows, nothing is lost.
        stream.Hold();
        var frames = Enumerable.Range(0, 3_000).Select(i => $"f{i:D5}|").ToList();
        foreach (var frame in frames)
        {
            await stream.WriteAsync(System.Text.Encoding.ASCII.GetBytes(frame));
        }

        await stream.ReleaseAsync(CancellationToken.None);
        Assert.Equal(string.Concat(frames), socket.Writes[^1]);
        Assert.Equal(4, socket.Writes.Count);
    }

    private sealed class RecordingStream : MemoryStream
    {
        public List<string> Writes { get; } = [];

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writes.Add(System.Text.Encoding.ASCII.GetString(buffer.Span));
            return ValueTask.CompletedTask;
        }
    }
}
