using Bridge.Worker.Core;
using Bridge.Worker.Connections;
using Bridge.Worker.Nats;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Bridge.Worker.Security;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Bridge.Tests.Infrastructure;

/// <summary>Connections' sessions for unit tests without NATS: their room reader never reads the stream.</summary>
internal static class Sessions
{
    private static readonly ServiceProvider Services = new ServiceCollection().AddMetrics().BuildServiceProvider();

    /// <summary>A room reader over a log that throws if read (these tests' paths never read a room).</summary>
    public static RoomReader UnreadReader(TimeProvider? time = null)
    {
        time ??= TimeProvider.System;
        var metrics = new BridgeMetrics(Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), time);
        return new RoomReader(new UnreadLog(), metrics, Options.Create(new ConnectionOptions()), time, NullLogger<RoomReader>.Instance);
    }

    /// <summary>An anonymous connection's session: JSON and a send queue of 64 frames and 64 KiB unless given.</summary>
    public static ClientSession New(
        string id = "c1", OutboundQueue? queue = null, int maxConcurrentRequests = 16, RoomReader? reader = null, IFrameCodec? codec = null,
        TransportKind transport = TransportKind.WebSocket) =>
        new(id, UserIdentity.AnonymousUser, codec ?? JsonFrameCodec.Instance, queue ?? new OutboundQueue(64, 65536), reader ?? UnreadReader(), maxConcurrentRequests, transport);

    private sealed class UnreadLog : IRoomLog
    {
        public ValueTask<ulong> GetLastSeqAsync(string room, CancellationToken cancellationToken) => throw Unexpected();

        public ValueTask<bool> IsStoredInRoomAsync(string room, ulong seq, CancellationToken cancellationToken) => throw Unexpected();

        public IAsyncEnumerable<RoomMessage> ReadAsync(
            string room, ulong afterSeq, ulong? upToSeq, CancellationToken cancellationToken, ulong mustReach = 0, ReadLimit limit = default, DropCheck? check = null) =>
            throw Unexpected();

        public IRoomCursor OpenCursor(string room) => throw Unexpected();

        public ValueTask<ILatestPages> ReadLatestEachAsync(string room, ulong afterSeq, ulong upToSeq, int maxRooms, CancellationToken cancellationToken) =>
            throw Unexpected();

        private static InvalidOperationException Unexpected() => new("these tests never read the stream");
    }
}
