using Bridge.Tests.Infrastructure;
using Bridge.Worker.Connections;

namespace Bridge.Tests.Unit;

/// <summary>
/// What one active room costs a connection (docs/benchmarks.md, "Memory per room": a <see cref="RoomMembership"/> of
/// 88 B). The worker's room reader is the connection's (<see cref="SessionRooms.Reader"/>, given at its start), not a
/// field of each membership.
/// </summary>
public sealed class MembershipSizeTests
{
    [Fact]
    public void A_plain_membership_is_88_bytes_and_reads_with_its_connections_reader()
    {
        var reader = Sessions.UnreadReader();
        var session = Sessions.New(reader: reader);
        _ = new RoomMembership(session, "warm.up");

        var before = GC.GetAllocatedBytesForCurrentThread();
        var membership = new RoomMembership(session, "orders.eu");
        var bytes = GC.GetAllocatedBytesForCurrentThread() - before;

        Assert.Equal(88, bytes);
        Assert.Same(session, membership.Session);
        Assert.Same(reader, membership.Session.Rooms.Reader);
    }
}
