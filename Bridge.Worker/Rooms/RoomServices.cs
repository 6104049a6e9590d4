namespace Bridge.Worker.Rooms;

/// <summary>
/// What every room of a registry shares: the registry itself, the stream it reads, metrics and logs, and how many live
/// messages a room keeps while a gap fill runs (<see cref="RoomSequence"/>; <c>Bridge:Nats:RoomFeedCapacity</c>).
/// </summary>
internal sealed record RoomServices(RoomRegistry Registry, IRoomLog Log, Operations.BridgeMetrics Metrics, ILogger Logger, int BacklogCapacity = 8192);
