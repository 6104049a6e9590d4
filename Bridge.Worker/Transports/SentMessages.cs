using Bridge.Worker.Connections;
using Bridge.Worker.Core;
using Bridge.Worker.Operations;

namespace Bridge.Worker.Transports;

/// <summary>
/// A send loop's tally of the room messages it wrote since its last <see cref="Flush"/>: each frame is added once as it
/// is written (control frames are not counted), and the counters are updated once per batch (one
/// <see cref="BridgeMetrics.MessagesOut"/> for many frames) rather than per frame. The delivery latency is still recorded
/// per message (of live ones: <see cref="OutboundFrame.IsTimed"/>), against one clock reading per batch (the frames of a batch reach the socket together). A local of
/// one send loop: never shared.
/// </summary>
internal struct SentMessages(BridgeMetrics metrics, TransportKind transport)
{
    private int _count;
    private long _bytes;
    private long _now;

    /// <summary>Room messages added since the last flush.</summary>
    public readonly int Count => _count;

    /// <summary>Counts <paramref name="frame"/> if it is a room message.</summary>
    public void Add(in OutboundFrame frame)
    {
        if (!frame.IsRoomMessage)
        {
            return;
        }

        if (_count++ == 0)
        {
            _now = metrics.NowMilliseconds;
        }

        _bytes += frame.Bytes.Length;
        if (frame.IsTimed)
        {
            metrics.DeliveredAt(transport, frame.Timestamp, _now);
        }
    }

    /// <summary>Updates the counters with what was added since the last flush, and starts again.</summary>
    public void Flush()
    {
        if (_count == 0)
        {
            return;
        }

        metrics.MessagesOut(transport, _count, _bytes);
        (_count, _bytes) = (0, 0);
    }
}
