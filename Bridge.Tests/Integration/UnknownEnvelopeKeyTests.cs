using System.Net.WebSockets;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;
using static Bridge.Tests.Infrastructure.Raw;

namespace Bridge.Tests.Integration;

/// <summary>
/// Unknown envelope keys (docs/protocol.md §2): each is ignored once, so newer clients talk to older workers, but the
/// same unknown name twice in one envelope is refused with <c>bad_frame</c> like a known key twice, and nothing is
/// stored.
/// </summary>
public sealed class UnknownEnvelopeKeyTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task An_unknown_key_once_is_ignored_and_the_same_unknown_key_twice_gets_bad_frame_and_nothing_is_stored(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("unk");
        await using var stored = await SubjectObserver.StartAsync(nats.Server.Url, $"rooms.{room}");
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);

        async Task SendAsync(params (string, RawValue)[] entries)
        {
            var frame = M(entries);
            await client.SendRawAsync(protocol == Subprotocols.Json ? frame.ToJson() : frame.ToMsgPack(), WebSocketMessageType.Binary);
        }

        // Unknown keys once each (a client echoing a received message's seq, ts and from): stored and acked.
        await SendAsync(("type", S("chat.message")), ("room", S(room)), ("id", S("once")), ("x", N(1)), ("seq", N(7)), ("ts", N(8)), ("from", S("z")), ("payload", N(1)));
        var ack = await client.WaitForAsync(f => f.Type is MessageTypes.Ack or MessageTypes.Error);
        Assert.True((ack.Type, ack.Id) == (MessageTypes.Ack, "once"), ack.ToString());

        // The same unknown key twice, with other keys between: refused, the id read before the repeat as ref.
        await SendAsync(("type", S("chat.message")), ("id", S("twice")), ("x", N(1)), ("room", S(room)), ("payload", N(2)), ("x", N(1)));
        var error = await client.WaitForAsync(f => f.Type is MessageTypes.Ack or MessageTypes.Error);
        Assert.Equal(ErrorCodes.BadFrame, error.ErrorCode);
        Assert.Equal("duplicate name: an unknown envelope key appears twice", error.Payload!["message"]!.GetValue<string>());
        Assert.Equal("twice", error.Payload!["ref"]!.GetValue<string>());

        // The connection keeps serving, and only the first publish was stored.
        await SendAsync(("type", S("chat.message")), ("room", S(room)), ("id", S("after")), ("payload", N(3)));
        ack = await client.WaitForAsync(f => f.Type is MessageTypes.Ack or MessageTypes.Error);
        Assert.True((ack.Type, ack.Id) == (MessageTypes.Ack, "after"), ack.ToString());
        Assert.Equal(2, (await stored.DrainAsync()).Count);
    }
}
