using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Testing;

namespace Bridge.Tests.Infrastructure;

/// <summary>
/// One member of each format in a room, all joined: a <c>bridge.v1.msgpack</c> and a <c>bridge.v1.json</c> WebSocket
/// client and an SSE stream. The MessagePack tests check that a MessagePack payload reaches each as it should.
/// </summary>
internal sealed class MembersOfEachFormat : IAsyncDisposable
{
    private MembersOfEachFormat(TestClient pack, TestClient json, SseClient sse)
    {
        Pack = pack;
        Json = json;
        Sse = sse;
    }

    public TestClient Pack { get; }

    public TestClient Json { get; }

    public SseClient Sse { get; }

    public static async Task<MembersOfEachFormat> JoinAsync(WorkerHost worker, string room)
    {
        var members = new MembersOfEachFormat(
            await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack),
            await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.Json),
            await SseClient.ConnectAsync(worker.HttpUrl, room));
        await members.Pack.JoinAndWaitAsync(room);
        await members.Json.JoinAndWaitAsync(room);
        await members.Sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        return members;
    }

    /// <summary>
    /// Waits for the message of <paramref name="type"/> at each member: the MessagePack member must receive
    /// <paramref name="payload"/> byte for byte, the JSON member and the SSE stream <paramref name="rendering"/>.
    /// Returns its seq.
    /// </summary>
    public async Task<ulong> AssertReceivedAsync(string type, byte[] payload, JsonNode rendering)
    {
        var received = await Pack.WaitForAsync(f => f.Type == type);
        Assert.Equal(payload, received.RawMsgPackPayload());
        AssertEqual(rendering, (await Json.WaitForAsync(f => f.Type == type)).Payload);
        AssertEqual(rendering, (await Sse.WaitForAsync(e => e.Event == type)).Json["payload"]);
        return received.Seq;
    }

    private static void AssertEqual(JsonNode expected, JsonNode? payload) =>
        Assert.True(JsonNode.DeepEquals(expected, payload), $"{payload?.ToJsonString()} is not {expected.ToJsonString()}");

    public async ValueTask DisposeAsync()
    {
        await Sse.DisposeAsync();
        await Json.DisposeAsync();
        await Pack.DisposeAsync();
    }
}
