using System.Diagnostics.Metrics;
using Bridge.Worker.Connections;
using Bridge.Worker.Core;
using Bridge.Worker.Operations;
using Bridge.Worker.Transports;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Bridge.Tests.Unit;

/// <summary>
/// A send loop counts the room messages it writes once per batch: the counters get one measurement per flush carrying
/// every frame of the batch exactly once, and each message still gets its own delivery latency.
/// </summary>
public sealed class SentMessagesTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly MeterListener _listener = new();
    private readonly List<(string Name, double Value, string? Transport)> _measurements = [];
    private readonly FakeTimeProvider _time = new(DateTimeOffset.FromUnixTimeMilliseconds(1_700_000_010_000));
    private readonly BridgeMetrics _metrics;

    public SentMessagesTests()
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            // Only this test's meter: other tests' workers report under the same names in this process.
            if (instrument.Meter.Scope == meters && instrument.Name is "bridge.messages.out" or "bridge.sent" or "bridge.delivery.latency")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.SetMeasurementEventCallback<double>((instrument, value, tags, _) => Record(instrument, value, tags));
        _listener.Start();
        _metrics = new BridgeMetrics(meters, _time);
    }

    public void Dispose()
    {
        _listener.Dispose();
        _services.Dispose();
    }

    private void Record(Instrument instrument, double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
    {
        var transport = tags.ToArray().FirstOrDefault(t => t.Key == "transport").Value as string;
        lock (_measurements)
        {
            _measurements.Add((instrument.Name, value, transport));
        }
    }

    private List<(string Name, double Value, string? Transport)> Of(string name)
    {
        lock (_measurements)
        {
            return _measurements.Where(m => m.Name == name).ToList();
        }
    }

    private static OutboundFrame RoomMessage(int bytes, long timestamp) => new(new byte[bytes], "chat.message", "r", 1, timestamp);

    [Fact]
    public void A_batch_of_room_messages_is_counted_once_at_its_flush_with_every_frame_and_byte_and_each_message_gets_its_latency()
    {
        var sent = new SentMessages(_metrics, TransportKind.WebSocket);
        sent.Add(RoomMessage(100, 1_700_000_009_000));
        sent.Add(new OutboundFrame(new byte[40], "pong")); // a control frame: not a room message
        sent.Add(RoomMessage(200, 1_700_000_008_000));
        _time.Advance(TimeSpan.FromSeconds(5)); // within a batch: the latency is taken against the batch's first clock reading
        sent.Add(RoomMessage(300, 1_700_000_009_500));

        Assert.Empty(Of("bridge.messages.out"));
        Assert.Equal(3, sent.Count);
        Assert.Equal([1.0, 2.0, 0.5], Of("bridge.delivery.latency").Select(m => m.Value));

        sent.Flush();
        var counted = Assert.Single(Of("bridge.messages.out"));
        Assert.Equal((3.0, "websocket"), (counted.Value, counted.Transport));
        Assert.Equal(600, Assert.Single(Of("bridge.sent")).Value);
        Assert.Equal(0, sent.Count);

        // Nothing new: no measurement; the next batch counts only its own frames, against a new clock reading.
        sent.Flush();
        sent.Add(RoomMessage(50, 1_700_000_014_000));
        sent.Flush();
        Assert.Equal([3.0, 1.0], Of("bridge.messages.out").Select(m => m.Value));
        Assert.Equal([600.0, 50.0], Of("bridge.sent").Select(m => m.Value));
        Assert.Equal(1.0, Of("bridge.delivery.latency").Last().Value);
    }

    [Fact]
    public void A_message_replayed_for_a_join_is_counted_and_its_bytes_too_but_its_age_is_not_recorded_as_a_delivery_latency()
    {
        var sent = new SentMessages(_metrics, TransportKind.Sse);
        sent.Add(RoomMessage(100, 1_600_000_000_000) with { Replayed = true }); // stored long ago, read for a resume
        sent.Add(RoomMessage(20, 1_700_000_009_000));
        sent.Flush();

        Assert.Equal((2.0, "sse"), (Assert.Single(Of("bridge.messages.out")).Value, Assert.Single(Of("bridge.messages.out")).Transport));
        Assert.Equal(120, Assert.Single(Of("bridge.sent")).Value);
        Assert.Equal([1.0], Of("bridge.delivery.latency").Select(m => m.Value));
    }
}
