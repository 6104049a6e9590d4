namespace Bridge.Worker.Rooms;

/// <summary>A local connection in a room, whatever its transport.</summary>
internal interface IRoomMember
{
    string ConnectionId { get; }

    /// <summary>The connection's user (for presence).</summary>
    string User { get; }

    /// <summary>
    /// Queues the message without waiting. A member whose queue is full closes itself (slow consumer);
    /// it never blocks the room's other members.
    /// </summary>
    void Deliver(RoomMessage message);
}
