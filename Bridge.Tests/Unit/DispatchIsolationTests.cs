using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net.WebSockets;
using Bridge.Tests.Infrastructure;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Rooms;
using Bridge.Worker.Security;
using MessagePack;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;

namespace Bridge.Tests.Unit;

/// <summary>
/// One message that cannot be encoded, or one member that fails, never costs anyone else anything: the message goes
/// out in a form every member can read (or is skipped, counted), and the room's other members still get it.
/// </summary>
public sealed class DispatchIsolationTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, long> _fallbacks = new();
    private readonly MessageFallbacks _reporter;
    private readonly BridgeMetrics _metrics;

    public DispatchIsolationTests()
    {
        var meters = _services.GetRequiredService<IMeterFactory>();
        // Only this test's meter: other tests' workers report under the same name in this process.
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter.Scope == meters && instrument.Name == "bridge.messages.fallback")
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            var key = string.Join('/', tags.ToArray().OrderBy(t => t.Key).Select(t => t.Value));
            _fallbacks.AddOrUpdate(key, value, (_, total) => total + value);
        });
        _listener.Start();
        _metrics = new BridgeMetrics(meters, TimeProvider.System);
        _reporter = new MessageFallbacks(_metrics, NullLogger<MessageFallbacks>.Instance);
    }

    public void Dispose()
    {
        _listener.Dispose();
        _services.Dispose();
    }

    private RoomMessage Message(byte[] payload, PayloadKind kind = PayloadKind.Json, ulong seq = 7) => new()
    {
        Room = "r",
        Type = "chat.message",
        Id = "m1",
        From = "backend",
        Seq = seq,
        Timestamp = 1_700_000_000_000,
        PayloadKind = kind,
        Payload = payload,
        Fallbacks = _reporter,
    };

    [Fact]
    public void A_stored_json_payload_that_is_not_utf8_goes_to_both_formats_as_binary_once_and_is_counted()
    {
        // Bypasses RoomMessageReader (which would already have made it binary): the codecs' own last line of defence.
        byte[] payload = [.. """{"s":"A"""u8, 0xFF, .. "B\"}"u8];
        var message = Message(payload);

        var json = message.GetFrame(JsonFrameCodec.Instance)!;
        Assert.True(System.Text.Unicode.Utf8.IsValid(json), "a JSON frame that is not UTF-8 left the codec");
        var envelope = System.Text.Json.Nodes.JsonNode.Parse(json)!;
        Assert.Equal("base64", envelope["enc"]!.GetValue<string>());
        Assert.Equal(payload, Convert.FromBase64String(envelope["payload"]!.GetValue<string>()));
        Assert.Equal(7UL, envelope["seq"]!.GetValue<ulong>());

        var pack = message.GetFrame(MessagePackFrameCodec.Instance)!;
        var map = MessagePackSerializer.Deserialize<Dictionary<string, object>>(pack);
        Assert.Equal(payload, map["payload"]);
        Assert.Equal("backend", map["from"]);

        // Encoded once per format: a room's thousand members cost one fallback each, not a thousand.
        Assert.Same(json, message.GetFrame(JsonFrameCodec.Instance));
        Assert.Same(pack, message.GetFrame(MessagePackFrameCodec.Instance));
        Assert.Equal(1, _fallbacks.GetValueOrDefault("json/binary"));
        Assert.Equal(1, _fallbacks.GetValueOrDefault("msgpack/binary"));
    }

    [Fact]
    public void A_stored_json_payload_with_an_escaped_lone_surrogate_goes_to_msgpack_members_as_binary()
    {
        var payload = """{"s":"\ud800"}"""u8.ToArray();
        var message = Message(payload);
        var pack = MessagePackSerializer.Deserialize<Dictionary<string, object>>(message.GetFrame(MessagePackFrameCodec.Instance)!);
        Assert.Equal(payload, pack["payload"]);
        Assert.Equal(1, _fallbacks.GetValueOrDefault("msgpack/binary"));
    }

    [Fact]
    public void A_backend_body_labelled_json_that_is_not_utf8_is_read_as_binary_for_everyone_and_counted()
    {
        var reader = new Bridge.Worker.Nats.RoomMessageReader(_reporter, TimeProvider.System);
        var headers = new NATS.Client.Core.NatsHeaders { [NatsSubjects.ContentTypeHeader] = "application/json; charset=utf-8" };
        byte[] body = [.. """{"s":"A"""u8, 0xC0, 0xAF, .. "\"}"u8];
        var message = reader.Create("r", 9, 8, 1_700_000_000_000, headers, body);
        Assert.Equal(PayloadKind.Binary, message.PayloadKind);
        Assert.Equal(1, _fallbacks.GetValueOrDefault("all/binary"));

        // Unlabelled bytes that are not JSON are binary as documented, and not a fallback.
        Assert.Equal(PayloadKind.Binary, reader.Create("r", 10, 9, 1, null, [0xFF, 0x00]).PayloadKind);
        Assert.Equal(1, _fallbacks.GetValueOrDefault("all/binary"));
    }

    [Fact]
    public void A_type_string_that_passed_the_check_once_skips_it_but_no_other_string_or_a_missing_type_does()
    {
        var reader = new Bridge.Worker.Nats.RoomMessageReader(_reporter, TimeProvider.System);
        Bridge.Worker.Nats.HeaderBlock Typed(string? type) => new(0, type, null, null, null, Malformed: false);
        var type = "chat.message";

        // Before any type passed, a message without one is not taken for one that did.
        Assert.Equal(NatsSubjects.DefaultType, reader.Create("r", 1, 0, 1, Typed(null), "{}"u8.ToArray()).Type);
        Assert.Same(type, reader.Create("r", 1, 0, 1, Typed(type), "{}"u8.ToArray()).Type);
        Assert.Same(type, reader.Create("r", 2, 1, 1, Typed(type), "{}"u8.ToArray()).Type);
        Assert.Equal(NatsSubjects.DefaultType, reader.Create("r", 3, 2, 1, Typed(null), "{}"u8.ToArray()).Type);
        Assert.Equal(NatsSubjects.DefaultType, reader.Create("r", 4, 3, 1, Typed("chat..message"), "{}"u8.ToArray()).Type);
        Assert.Equal(NatsSubjects.DefaultType, reader.Create("r", 5, 4, 1, Typed(MessageTypes.RoomJoined), "{}"u8.ToArray()).Type);
        // Reserved in any case: a backend's ROOM.Joined reaches clients as a plain message, never as the gateway's frame.
        Assert.Equal(NatsSubjects.DefaultType, reader.Create("r", 5, 4, 1, Typed("ROOM.Joined"), "{}"u8.ToArray()).Type);
        Assert.Same(type, reader.Create("r", 6, 5, 1, Typed(type), "{}"u8.ToArray()).Type);
    }

    [Fact]
    public void A_backend_body_with_a_name_twice_is_json_for_json_members_and_binary_for_msgpack_members()
    {
        var reader = new Bridge.Worker.Nats.RoomMessageReader(_reporter, TimeProvider.System);
        var body = """{"a":1,"b":[{"k":1,"k":2}]}"""u8.ToArray();
        var message = reader.Create("r", 9, 8, 1_700_000_000_000, null, body);
        Assert.Equal(PayloadKind.Json, message.PayloadKind);

        var json = System.Text.Encoding.UTF8.GetString(message.GetFrame(JsonFrameCodec.Instance)!);
        Assert.EndsWith("\"payload\":{\"a\":1,\"b\":[{\"k\":1,\"k\":2}]}}", json, StringComparison.Ordinal);
        var pack = MessagePackSerializer.Deserialize<Dictionary<string, object>>(message.GetFrame(MessagePackFrameCodec.Instance)!);
        Assert.Equal(body, pack["payload"]);
        Assert.Equal(1, _fallbacks.GetValueOrDefault("msgpack/binary"));
    }

    [Fact]
    public void A_message_a_codec_cannot_encode_in_any_form_is_skipped_for_that_format_and_counted()
    {
        var message = Message("{}"u8.ToArray());
        Assert.Null(message.GetFrame(new BrokenCodec()));
        Assert.Null(message.GetFrame(new BrokenCodec()));
        Assert.Equal(1, _fallbacks.GetValueOrDefault("json/skipped"));

        // A connection of that format is sent nothing for it, and stays open.
        var session = Session(new BrokenCodec());
        Assert.True(session.TryDeliver(message, message.Room, message.Seq)); // skipped counts as done: the member stays live
        Assert.Equal(0, session.Queue.Reader.Count);
        Assert.Null(session.CloseRequested);
    }

    [Fact]
    public void One_member_that_throws_does_not_cost_the_others_the_message()
    {
        // Dispatch alone: no registry, no stream behind this room.
        var room = new Room("r", new RoomServices(null!, null!, _metrics, NullLogger.Instance));
        var first = new Member("a");
        var broken = new Member("b") { Fails = true };
        var last = new Member("c");
        foreach (var member in new[] { first, broken, last })
        {
            Assert.True(room.TryAdd(member));
        }

        var message = Message("{}"u8.ToArray());
        var failure = Assert.Throws<AggregateException>(() => DispatchUnderGate(room, message));
        Assert.Single(failure.InnerExceptions);
        Assert.Equal([7UL], first.Received);
        Assert.Equal([7UL], last.Received);

        // The next message reaches everyone who can take it, in order.
        Assert.Throws<AggregateException>(() => DispatchUnderGate(room, Message("{}"u8.ToArray(), seq: 8)));
        Assert.Equal([7UL, 8UL], first.Received);
        Assert.Equal([7UL, 8UL], last.Received);
    }

    [Fact]
    public void A_room_closes_with_its_last_member_and_then_takes_none()
    {
        // The room keeps no count or flag: its members and its closed state are read from the one member, the set and
        // the closed marker.
        var room = new Room("r", new RoomServices(null!, null!, _metrics, NullLogger.Instance));
        var a = new Member("a");
        var b = new Member("b");
        Assert.Equal(0, room.MemberCount);
        Assert.True(room.TryAdd(a));
        Assert.True(room.TryAdd(a)); // already in: not counted twice
        Assert.Equal(1, room.MemberCount);
        Assert.False(room.HasCrowd);
        Assert.True(room.TryAdd(b));
        Assert.Equal(2, room.MemberCount);

        Assert.False(room.Remove(new Member("x"))); // not a member
        Assert.False(room.Remove(a));
        Assert.Equal(1, room.MemberCount);
        Assert.True(room.Remove(b)); // the last one: closed
        Assert.Equal(0, room.MemberCount);
        Assert.False(room.HasCrowd);
        Assert.False(room.Remove(b));

        // Closed for good: a joiner must look the room up again, and a last message still coming reaches no one.
        Assert.False(room.TryAdd(a));
        Assert.Equal(0, room.MemberCount);
        DispatchUnderGate(room, Message("{}"u8.ToArray()));
        Assert.Empty(a.Received);
        Assert.Empty(b.Received);

        // A room of one member closes the same way.
        var single = new Room("s", new RoomServices(null!, null!, _metrics, NullLogger.Instance));
        Assert.True(single.TryAdd(a));
        Assert.True(single.Remove(a));
        Assert.False(single.TryAdd(b));
        Assert.Equal(0, single.MemberCount);
    }

    [Fact]
    public void A_connection_that_could_not_queue_a_message_is_closed_with_1011_so_its_client_resumes()
    {
        var session = Session(new BrokenCodec { FormatThrows = true });
        Assert.ThrowsAny<InvalidOperationException>(() => session.TryDeliver(Message("{}"u8.ToArray()), "r", 7));
        Assert.Equal(CloseCodes.InternalError, session.CloseRequested?.Code);
    }

    private static ClientSession Session(IFrameCodec codec) =>
        Sessions.New("c1", new OutboundQueue(16, 1 << 20), codec: codec);

    private sealed class Member(string id) : IRoomMember
    {
        public List<ulong> Received { get; } = [];

        public bool Fails { get; init; }

        public string ConnectionId => id;

        public string User => id;

        public void Deliver(RoomMessage message)
        {
            if (Fails)
            {
                throw new InvalidOperationException("this member is broken");
            }

            Received.Add(message.Seq);
        }

        public void DeliverAfterGap(RoomMessage message) => Deliver(message);

        public void Hold()
        {
        }
    }

    /// <summary>As the room's sequence dispatches: under the room's gate.</summary>
    private static void DispatchUnderGate(Room room, RoomMessage message)
    {
        lock (room.Gate)
        {
            room.Dispatch(message);
        }
    }

    /// <summary>A codec that cannot encode anything (and, optionally, not even say its format).</summary>
    private sealed class BrokenCodec : IFrameCodec
    {
        public bool FormatThrows { get; init; }

        public WireFormat Format => FormatThrows ? throw new InvalidOperationException("broken codec") : WireFormat.Json;

        public string Subprotocol => Subprotocols.Json;

        public WebSocketMessageType MessageType => WebSocketMessageType.Text;

        public InboundFrame? Decode(ReadOnlySpan<byte> data, out DecodeError error) => throw new NotSupportedException();

        public byte[] EncodeMessage(RoomMessage message) => throw new FormatException("cannot encode");

        public byte[] EncodeControl(ControlFrame frame) => JsonFrameCodec.Instance.EncodeControl(frame);
    }
}
