using System.Net.WebSockets;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Protocol;
using CsCheck;
using MessagePack;

namespace Bridge.Tests.Security;

/// <summary>
/// Property-based fuzzing (CsCheck) of both decoders with random and mutated frames: every frame decodes or gets
/// a decode error, never an exception; over a real socket the worker answers, closes only with documented codes,
/// keeps serving other clients, and its memory stays flat.
/// </summary>
public sealed class FuzzTests
{
    internal static readonly byte[][] JsonSeeds =
    [
        """{"type":"room.join","room":"fz.a","payload":{"since":0}}"""u8.ToArray(),
        """{"type":"chat.message","room":"fz.a","id":"m1","payload":{"text":"hi","n":[1,2,{"x":null}]}}"""u8.ToArray(),
        """{"type":"room.sync","room":"fz.a","payload":{"limit":5}}"""u8.ToArray(),
        """{"type":"room.join","payload":{"rooms":[{"room":"fz.a","since":1},{"room":"fz.b"}]}}"""u8.ToArray(),
        """{"type":"chat.blob","room":"fz.a","enc":"base64","payload":"aGVsbG8="}"""u8.ToArray(),
        """{"type":"auth.refresh","payload":{"token":"x.y.z"}}"""u8.ToArray(),
    ];

    internal static readonly byte[][] MsgPackSeeds =
    [
        MessagePackSerializer.Serialize(new Dictionary<string, object?> { ["type"] = "room.join", ["room"] = "fz.a" }),
        MessagePackSerializer.Serialize(new Dictionary<string, object?>
        {
            ["type"] = "chat.message", ["room"] = "fz.a", ["id"] = "m1",
            ["payload"] = new Dictionary<string, object?> { ["t"] = 1.5, ["b"] = new byte[] { 1, 2, 3 }, ["l"] = new object[] { 1, "a", null! } },
        }),
        MessagePackSerializer.Serialize(new Dictionary<string, object?> { ["type"] = "room.sync", ["room"] = "fz.a", ["payload"] = new Dictionary<string, object?> { ["limit"] = 3 } }),
    ];

    /// <summary>Random bytes, or a seed frame with one of several mutations (byte flips, cuts, splices, nesting bombs).</summary>
    internal static Gen<byte[]> Frames(byte[][] seeds) =>
        Gen.Frequency(
            (1, Gen.Byte.Array[0, 300]),
            (4, Gen.Select(Gen.Int[0, seeds.Length - 1], Gen.Int[0, 5], Gen.Int[0, 1000], Gen.Byte.Array[1, 8], (s, op, at, bytes) => Mutate(seeds[s], op, at, bytes))));

    private static byte[] Mutate(byte[] seed, int op, int at, byte[] bytes)
    {
        var position = seed.Length == 0 ? 0 : at % seed.Length;
        var list = seed.ToList();
        switch (op)
        {
            case 0: // overwrite
                for (var i = 0; i < bytes.Length && position + i < list.Count; i++)
                {
                    list[position + i] = bytes[i];
                }

                break;
            case 1: // insert
                list.InsertRange(position, bytes);
                break;
            case 2: // cut the tail
                list.RemoveRange(position, list.Count - position);
                break;
            case 3: // delete a few bytes
                list.RemoveRange(position, Math.Min(bytes.Length, list.Count - position));
                break;
            case 4: // deep nesting (JSON arrays or msgpack fixarrays)
                var open = bytes[0] % 2 == 0 ? (byte)'[' : (byte)0x91;
                list.InsertRange(position, Enumerable.Repeat(open, 200 + (at % 5000)));
                break;
            default: // duplicate a slice
                list.InsertRange(position, seed.Skip(position).Take(bytes.Length * 4));
                break;
        }

        return [.. list];
    }

    [Fact]
    public void Json_decoder_never_throws_on_random_and_mutated_frames() =>
        Frames(JsonSeeds).Sample(frame => DecodesOrRefuses(JsonFrameCodec.Instance, frame), iter: 30_000);

    [Fact]
    public void MessagePack_decoder_never_throws_on_random_and_mutated_frames() =>
        Frames(MsgPackSeeds).Sample(frame => DecodesOrRefuses(MessagePackFrameCodec.Instance, frame), iter: 30_000);

    private static void DecodesOrRefuses(IFrameCodec codec, byte[] frame)
    {
        var decoded = codec.Decode(frame, out var error);
        if (decoded is null)
        {
            Assert.False(string.IsNullOrEmpty(error.Message));
        }
    }
}

/// <summary>
/// The fuzzed frames over live sockets. Runs in the non-parallel collection: the managed-heap check measures the
/// whole test process, so no other test may run beside it.
/// </summary>
[Collection(Integration.MetricsCollection.Name)]
public sealed class LiveFuzzTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task The_worker_survives_a_stream_of_fuzzed_frames_and_keeps_serving_others(string subprotocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var seeds = subprotocol == Subprotocols.Json ? FuzzTests.JsonSeeds : FuzzTests.MsgPackSeeds;
        var type = subprotocol == Subprotocols.Json ? WebSocketMessageType.Text : WebSocketMessageType.Binary;
        // Text frames must be UTF-8 (the WebSocket layer closes with 1007 otherwise; the decoder tests above cover
        // invalid UTF-8): the JSON connection gets the valid-UTF-8 ones, so all of them reach the decoder.
        var frames = FuzzTests.Frames(seeds).Array[2000].Single()
            .Where(f => type == WebSocketMessageType.Binary || System.Text.Unicode.Utf8.IsValid(f)).ToArray();
        Assert.True(frames.Length > 500, $"only {frames.Length} frames to send");
        var room = Names.Room("fz");
        await using var bystander = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await bystander.JoinAndWaitAsync(room);

        long? baseline = null;
        for (var round = 0; round < 3; round++)
        {
            await using var fuzzer = await TestClient.ConnectAsync(worker.WebSocketUrl, subprotocol);
            foreach (var frame in frames)
            {
                if (fuzzer.Closed.IsCompleted)
                {
                    break;
                }

                try
                {
                    await fuzzer.SendRawAsync(frame, type);
                }
                catch (WebSocketException)
                {
                    break; // closed by the server: checked below
                }
            }

            // Whatever the worker did, it was documented: still serving this connection, or closed with a documented code.
            var alive = false;
            try
            {
                await fuzzer.PublishAsync(room, new { after = round }, id: $"alive-{round}");
                await fuzzer.WaitForAsync(f => f.Type == MessageTypes.Ack && f.Id == $"alive-{round}", TimeSpan.FromSeconds(20));
                alive = true;
            }
            catch (Exception) when (fuzzer.Socket.State != WebSocketState.Open || fuzzer.Closed.IsCompleted)
            {
            }

            if (!alive)
            {
                var code = (int?)await fuzzer.Closed.WaitAsync(TimeSpan.FromSeconds(10));
                Assert.True(code is CloseCodes.InvalidPayload or CloseCodes.MessageTooBig or CloseCodes.SlowConsumer,
                    $"closed with {code?.ToString() ?? "no close frame"}: {fuzzer.Socket.CloseStatusDescription}");
            }

            // The bystander is served throughout.
            await bystander.PublishAsync(room, new { round }, id: $"b-{round}");
            await bystander.WaitForAsync(f => f.Type == "chat.message" && f.Json["payload"]?["round"]?.GetValue<int>() == round, TimeSpan.FromSeconds(20));

            // Memory stays flat across rounds (the first round warms up caches and pools).
            await Task.Delay(200);
            var now = GC.GetTotalMemory(forceFullCollection: true);
            baseline ??= now;
            Assert.True(now - baseline < 32L * 1024 * 1024, $"round {round}: managed heap grew from {baseline} to {now} bytes");
        }
    }
}
