using Bridge.Worker.Rooms;

namespace Bridge.Tests.Infrastructure;

/// <summary>Looking up an active room by name: the tests do, the worker never needs to.</summary>
internal static class ActiveRooms
{
    /// <summary>The room <paramref name="name"/> if it is active on this worker (a local connection is in it).</summary>
    public static bool TryGet(this RoomRegistry rooms, string name, out Room room)
    {
        room = rooms.Snapshot().FirstOrDefault(r => string.Equals(r.Name, name, StringComparison.Ordinal))!;
        return room is not null;
    }
}
