using Bridge.Worker.Rooms;

namespace Bridge.Worker.Connections;

/// <summary>
/// The members of one connection whose joins overlap (a room and a pattern that matches it, two patterns that share
/// rooms), so that the connection is sent each message once. Made by <see cref="SessionRooms"/> when a join overlaps
/// another; members that overlap nothing never see one (their sends take no extra lock).
/// </summary>
/// <remarks>
/// Every member has processed each message of its rooms in (<see cref="RoomMembership.Start"/>,
/// <see cref="RoomMembership.ProcessedUpTo"/>]: sent it, or skipped it because another member had. A message in that
/// range of another member is therefore already on its way to the client. Members read each other's range and send
/// under <see cref="Gate"/>, and write their range only under it: two members reaching the same message at once cannot
/// both send it. A conflated member counts as no one's cover (it sends only the newest per room), but skips what an
/// unconflated member sent.
/// </remarks>
internal sealed class OverlapGroup
{
    private readonly List<RoomMembership> _members = [];

    /// <summary>Taken after a member's own lock, never before it.</summary>
    public Lock Gate { get; } = new();

    /// <summary>Called under <see cref="Gate"/>.</summary>
    public void Add(RoomMembership member)
    {
        if (!_members.Contains(member))
        {
            _members.Add(member);
        }
    }

    /// <summary>Called under <see cref="Gate"/>.</summary>
    public void Remove(RoomMembership member) => _members.Remove(member);

    /// <summary>Called under <see cref="Gate"/>: true when another member has already processed <paramref name="message"/>.</summary>
    public bool SentByAnother(RoomMembership member, RoomMessage message)
    {
        foreach (var other in _members)
        {
            if (!ReferenceEquals(other, member) && !other.IsConflated && other.Start < message.Seq && message.Seq <= other.ProcessedUpTo &&
                other.Covers(message.Room))
            {
                return true;
            }
        }

        return false;
    }
}
