namespace Bridge.Worker.Rooms;

/// <summary>A local connection in a room, whatever its transport.</summary>
internal interface IRoomMember
{
    string ConnectionId { get; }

    /// <summary>The connection's user (for presence).</summary>
    string User { get; }

    /// <summary>
    /// A message from the room's live dispatch. Never waits and never throws: a member that cannot take it now
    /// (joining, or behind) ignores or holds it, and reads what it missed from the stream.
    /// </summary>
    void Deliver(RoomMessage message);

    /// <summary>
    /// Called at the seam, under the room's sequencing gate: from now on, live messages are held (bounded) until the
    /// member has read the stream up to the seam.
    /// </summary>
    void Hold();
}
