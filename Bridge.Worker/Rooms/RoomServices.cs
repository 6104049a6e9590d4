namespace Bridge.Worker.Rooms;

/// <summary>
/// What every room of a registry shares: the registry itself, the stream it reads, metrics and logs, how many live
/// messages a room keeps while a gap fill runs (<see cref="RoomSequence"/>; <c>Bridge:Nats:RoomFeedCapacity</c>), and
/// the factory of its feeds (a feed reaches it through its room instead of a field of its own: 8 B less per active room;
/// null in tests that open no feed).
/// </summary>
internal sealed record RoomServices(
    RoomRegistry Registry, IRoomLog Log, Operations.BridgeMetrics Metrics, ILogger Logger, int BacklogCapacity = 8192, IRoomFeedFactory? Feeds = null);
