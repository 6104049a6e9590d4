namespace Bridge.Worker.Connections;

/// <summary>
/// A frame queued for a connection: the encoded bytes (shared by every receiver of a room message) plus what a
/// transport needs to frame it. <see cref="Room"/> and <see cref="Seq"/> are set when the frame advances the
/// connection's position in a room or pattern it joined (a room message, or <c>room.joined</c>): SSE and long-poll build
/// their resume ids from them. For a pattern's message, <see cref="Room"/> is the pattern (the message's own room is in
/// its bytes). <see cref="Truncated"/> is a
/// <c>room.joined</c> that reports a gap (long-poll lists its room). <see cref="Replayed"/> is a room message read for a join
/// (a replay before its <c>room.joined</c>, or a latest value): published before the client asked for it, so its age is
/// no delivery latency.
/// </summary>
internal readonly record struct OutboundFrame(
    byte[] Bytes, string Type, string? Room = null, ulong Seq = 0, long Timestamp = 0, bool Truncated = false, bool Replayed = false)
{
    public bool AdvancesPosition => Room is not null;

    /// <summary>A stored room message (not a control frame): counted when written.</summary>
    public bool IsRoomMessage => Timestamp > 0;

    /// <summary>
    /// A room message whose stream timestamp to socket write is a delivery latency (<c>bridge.delivery.latency</c>): every
    /// room message but those read for a join (<see cref="Replayed"/>).
    /// </summary>
    public bool IsTimed => IsRoomMessage && !Replayed;
}
