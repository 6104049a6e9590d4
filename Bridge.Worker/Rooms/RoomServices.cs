namespace Bridge.Worker.Rooms;

/// <summary>What every room of a registry shares: the registry itself, the stream it reads, metrics and logs.</summary>
internal sealed record RoomServices(RoomRegistry Registry, IRoomLog Log, Operations.BridgeMetrics Metrics, ILogger Logger);
