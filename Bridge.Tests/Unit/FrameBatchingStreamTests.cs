using System.Net.WebSockets;
using System.Text;
using Bridge.Worker.Transports.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bridge.Tests.Unit;

/// <summary>
/// <see cref="FrameBatchingStream"/> under a real server <c>ManagedWebSocket</c> (<see cref="WebSocket.CreateFromStream(Stream, WebSocketCreationOptions)"/>):
/// what reaches the connection's stream, write by write, and what a client WebSocket reads back from those bytes.
/// </summary>
public sealed class FrameBatchingStreamTests
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Frames_sent_during_a_batch_reach_the_connection_in_one_write_when_it_ends_and_a_client_reads_them_all_in_order()
    {
        var connection = new WriteRecorder();
        var batching = new FrameBatchingStream(connection);
        using var server = WebSocket.CreateFromStream(batching, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });

        batching.BeginBatch();
        for (var i = 0; i < 100; i++)
        {
            await server.SendAsync(Encoding.UTF8.GetBytes($"frame {i}"), WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None).WaitAsync(Timeout);
        }

        Assert.Empty(connection.Writes);
        Assert.True(batching.Buffered > 0);
        await batching.EndBatchAsync(CancellationToken.None);

        Assert.Single(connection.Writes);
        Assert.Equal(0, batching.Buffered);
        Assert.Equal(Enumerable.Range(0, 100).Select(i => $"frame {i}"), await ReadAllAsync(connection.Bytes(), 100));
    }

    [Fact]
    public async Task Outside_a_batch_each_frame_is_written_at_once_and_a_flush_inside_one_writes_what_it_holds()
    {
        var connection = new WriteRecorder();
        var batching = new FrameBatchingStream(connection);
        using var server = WebSocket.CreateFromStream(batching, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });

        await server.SendAsync("a"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        await server.SendAsync("b"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        Assert.Equal(2, connection.Writes.Count);

        batching.BeginBatch();
        await server.SendAsync("c"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        await server.SendAsync("d"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        await batching.FlushBatchAsync(CancellationToken.None);
        Assert.Equal(3, connection.Writes.Count);

        // Still batching after a flush; ended, the next frame goes straight through again.
        await server.SendAsync("e"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        Assert.Equal(3, connection.Writes.Count);
        await batching.EndBatchAsync(CancellationToken.None);
        await server.SendAsync("f"u8.ToArray(), WebSocketMessageType.Text, true, CancellationToken.None);
        Assert.Equal(5, connection.Writes.Count);

        Assert.Equal(["a", "b", "c", "d", "e", "f"], await ReadAllAsync(connection.Bytes(), 6));
    }

    [Fact]
    public async Task A_batch_larger_than_the_first_buffer_is_kept_whole()
    {
        var connection = new WriteRecorder();
        var batching = new FrameBatchingStream(connection);
        using var server = WebSocket.CreateFromStream(batching, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });
        var big = new string('x', 40_000);

        batching.BeginBatch();
        for (var i = 0; i < 5; i++)
        {
            await server.SendAsync(Encoding.UTF8.GetBytes(big + i), WebSocketMessageType.Text, true, CancellationToken.None);
        }

        await batching.EndBatchAsync(CancellationToken.None);

        Assert.Single(connection.Writes);
        Assert.Equal(Enumerable.Range(0, 5).Select(i => big + i), await ReadAllAsync(connection.Bytes(), 5));
    }

    [Fact]
    public async Task Messages_framed_into_a_batch_of_every_length_class_read_back_whole_in_order_between_the_sockets_own_frames()
    {
        var connection = new WriteRecorder();
        var batching = new FrameBatchingStream(connection);
        using var server = WebSocket.CreateFromStream(batching, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });
        // The length boundaries of RFC 6455 §5.2: 7 bits up to 125, 16 bits from 126 to 65,535, 64 bits beyond.
        int[] lengths = [0, 1, 125, 126, 127, 65_535, 65_536, 200_000];

        Assert.False(batching.TryHoldMessage("outside"u8, text: true));
        Assert.Empty(connection.Writes);

        batching.BeginBatch();
        var sent = new List<(WebSocketMessageType Type, byte[] Bytes)>();
        foreach (var length in lengths)
        {
            var text = length % 2 == 0;
            var payload = Enumerable.Range(0, length).Select(i => (byte)('a' + (i % 26))).ToArray();
            Assert.True(batching.TryHoldMessage(payload, text));
            sent.Add((text ? WebSocketMessageType.Text : WebSocketMessageType.Binary, payload));
            // The socket's own frame between two framed here: whole, in its place.
            await server.SendAsync(Encoding.UTF8.GetBytes($"own {length}"), WebSocketMessageType.Text, true, CancellationToken.None);
            sent.Add((WebSocketMessageType.Text, Encoding.UTF8.GetBytes($"own {length}")));
        }

        Assert.Empty(connection.Writes);
        await batching.EndBatchAsync(CancellationToken.None);
        Assert.Single(connection.Writes);
        Assert.False(batching.TryHoldMessage("after"u8, text: true));

        using var client = WebSocket.CreateFromStream(new MemoryStream(connection.Bytes()), new WebSocketCreationOptions { IsServer = false, KeepAliveInterval = TimeSpan.Zero });
        var buffer = new byte[256 * 1024];
        foreach (var (type, bytes) in sent)
        {
            using var message = new MemoryStream();
            ValueWebSocketReceiveResult result;
            do
            {
                result = await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None).AsTask().WaitAsync(Timeout);
                Assert.Equal(type, result.MessageType);
                message.Write(buffer, 0, result.Count);
            }
            while (!result.EndOfMessage);
            Assert.Equal(bytes, message.ToArray());
        }
    }

    [Fact]
    public async Task Once_the_socket_wrote_its_close_frame_into_a_batch_no_message_is_framed_after_it_and_a_client_reads_the_close_last()
    {
        var connection = new WriteRecorder();
        var batching = new FrameBatchingStream(connection);
        using var server = WebSocket.CreateFromStream(batching, new WebSocketCreationOptions { IsServer = true, KeepAliveInterval = TimeSpan.Zero });

        batching.BeginBatch();
        Assert.True(batching.TryHoldMessage("before"u8, text: true));
        // As ManagedWebSocket does on its own when a client breaks the protocol: the close, written into the open batch.
        await server.CloseOutputAsync(WebSocketCloseStatus.ProtocolError, "bad frame", CancellationToken.None);
        Assert.False(batching.TryHoldMessage("after"u8, text: true));
        await batching.EndBatchAsync(CancellationToken.None);
        batching.BeginBatch();
        Assert.False(batching.TryHoldMessage("later"u8, text: true));
        await batching.EndBatchAsync(CancellationToken.None);

        using var client = WebSocket.CreateFromStream(new MemoryStream(connection.Bytes()), new WebSocketCreationOptions { IsServer = false, KeepAliveInterval = TimeSpan.Zero });
        var buffer = new byte[1024];
        var first = await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None).AsTask().WaitAsync(Timeout);
        Assert.Equal("before", Encoding.UTF8.GetString(buffer, 0, first.Count));
        var close = await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None).AsTask().WaitAsync(Timeout);
        Assert.Equal(WebSocketMessageType.Close, close.MessageType);
        Assert.Equal(WebSocketCloseStatus.ProtocolError, client.CloseStatus);
        // Nothing after the close: the connection's bytes end with it.
        Assert.Equal(2 + "before".Length + 2 + 2 + "bad frame".Length, connection.Bytes().Length);
    }

    [Fact]
    public async Task Under_Kestrel_a_WebSocket_accepted_on_the_batched_path_finds_the_stream_under_it_and_one_on_another_path_finds_none()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var app = builder.Build();
        FrameBatchingStream.UseUnder(app, "/ws");
        app.UseWebSockets();
        RequestDelegate report = async context =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync();
            var batching = FrameBatchingStream.Of(context);
            // The stream found is the one under this socket: a frame sent during a batch is held by it until the batch ends.
            batching?.BeginBatch();
            await socket.SendAsync(Encoding.UTF8.GetBytes(batching is null ? "none" : "batched"), WebSocketMessageType.Text, true, context.RequestAborted);
            var held = batching?.Buffered ?? 0;
            if (batching is not null)
            {
                await batching.EndBatchAsync(context.RequestAborted);
            }

            await socket.SendAsync(Encoding.UTF8.GetBytes($"held {held}"), WebSocketMessageType.Text, true, context.RequestAborted);
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "done", context.RequestAborted);
        };
        app.Map("/ws", report);
        app.Map("/other", report);
        await app.StartAsync();
        var url = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

        var batched = await ReadFromAsync(new Uri(url, "/ws"));
        var other = await ReadFromAsync(new Uri(url, "/other"));

        Assert.Equal("batched", batched[0]);
        Assert.StartsWith("held ", batched[1]);
        Assert.True(int.Parse(batched[1]["held ".Length..]) > 0, batched[1]);
        Assert.Equal(["none", "held 0"], other);
    }

    /// <summary>The two text messages a server sends to a client WebSocket that connects to <paramref name="url"/>.</summary>
    private static async Task<List<string>> ReadFromAsync(Uri url)
    {
        using var client = new ClientWebSocket();
        using var cts = new CancellationTokenSource(Timeout);
        await client.ConnectAsync(new UriBuilder(url) { Scheme = "ws" }.Uri, cts.Token);
        var messages = new List<string>();
        var buffer = new byte[1024];
        while (messages.Count < 2)
        {
            var result = await client.ReceiveAsync(buffer.AsMemory(), cts.Token);
            Assert.True(result.EndOfMessage);
            messages.Add(Encoding.UTF8.GetString(buffer, 0, result.Count));
        }

        return messages;
    }

    /// <summary>The text messages a client WebSocket reads from <paramref name="bytes"/> (what the server wrote).</summary>
    private static async Task<List<string>> ReadAllAsync(byte[] bytes, int count)
    {
        using var client = WebSocket.CreateFromStream(new MemoryStream(bytes), new WebSocketCreationOptions { IsServer = false, KeepAliveInterval = TimeSpan.Zero });
        var messages = new List<string>();
        var buffer = new byte[64 * 1024];
        while (messages.Count < count)
        {
            using var message = new MemoryStream();
            ValueWebSocketReceiveResult result;
            do
            {
                result = await client.ReceiveAsync(buffer.AsMemory(), CancellationToken.None).AsTask().WaitAsync(Timeout);
                message.Write(buffer, 0, result.Count);
            }
            while (!result.EndOfMessage);
            messages.Add(Encoding.UTF8.GetString(message.ToArray()));
        }

        return messages;
    }

    /// <summary>The connection's side: keeps each write as it came (how many writes, and the bytes in order).</summary>
    private sealed class WriteRecorder : Stream
    {
        public List<byte[]> Writes { get; } = [];

        public byte[] Bytes() => [.. Writes.SelectMany(w => w)];

        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Writes.Add(buffer.ToArray());
            return ValueTask.CompletedTask;
        }

        public override void Write(byte[] buffer, int offset, int count) => Writes.Add(buffer.AsSpan(offset, count).ToArray());

        public override int Read(byte[] buffer, int offset, int count) => 0;

        public override void Flush()
        {
        }

        public override bool CanRead => true;

        public override bool CanWrite => true;

        public override bool CanSeek => false;

        public override long Length => throw new NotSupportedException();

        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();
    }
}
