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
    /// As <see cref="Deliver"/>, for the first message dispatched after a hole that retention made in the room before its
    /// gap fill read it: a member that takes it (sends or holds it) follows it with <c>room.joined</c> <c>truncated</c>,
    /// under the same lock. A member that does not take it reads the stream from a position before the hole, and finds
    /// the hole itself. A conflated member is not told (it is sent the newest per room anyway, and its resume never is).
    /// </summary>
    void DeliverAfterGap(RoomMessage message);

    /// <summary>
    /// Called at the seam, under the room's sequencing gate: from now on, live messages are held (bounded) until the
    /// member has read the stream up to the seam.
    /// </summary>
    void Hold();

    /// <summary>
    /// A member joined with <c>maxRate</c>: not on the room's fan-out but in the room's <see cref="ConflationGroup"/> of its
    /// rate from its seam on (<see cref="Room.StartConflating"/>); null for every other member.
    /// </summary>
    ConflatedMember? Conflation => null;
}
