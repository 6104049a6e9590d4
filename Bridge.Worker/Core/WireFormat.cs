namespace Bridge.Worker.Core;

/// <summary>
/// The encodings a frame can be written in. Each room message is encoded at most once per format (a field per value in
/// <see cref="RoomMessage"/>: a third format adds one there).
/// </summary>
internal enum WireFormat
{
    Json = 0,
    MessagePack = 1,
}
