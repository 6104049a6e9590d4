using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Tests.Integration;

public sealed class StreamSetupTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task The_stream_is_created_from_configuration_and_updated_idempotently_by_later_workers()
    {
        var stream = "S" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var prefix = "r" + Guid.NewGuid().ToString("N")[..6];
        (string, string)[] settings =
        [
            ("Bridge:Nats:StreamName", stream), ("Bridge:Nats:RoomPrefix", prefix), ("Bridge:Nats:LivePrefix", "live." + prefix),
            ("Bridge:Nats:MaxMessagesPerRoom", "123"), ("Bridge:Nats:MaxAge", "01:00:00"), ("Bridge:Nats:Storage", "Memory"),
            ("Bridge:Nats:DuplicateWindow", "00:00:30"),
        ];
        await using (await WorkerHost.StartAsync(nats.Server, settings))
        {
        }

        // A second worker with the same settings starts cleanly; a third with a new retention updates the stream.
        await using var second = await WorkerHost.StartAsync(nats.Server, settings);
        await using var third = await WorkerHost.StartAsync(nats.Server, [.. settings.Where(s => s.Item1 != "Bridge:Nats:MaxMessagesPerRoom"), ("Bridge:Nats:MaxMessagesPerRoom", "456")]);

        await using var client = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var info = await new NatsJSContext(client).GetStreamAsync(stream);
        var config = info.Info.Config;
        Assert.Equal([$"{prefix}.>"], config.Subjects);
        Assert.Equal(456, config.MaxMsgsPerSubject);
        Assert.Equal(TimeSpan.FromHours(1), config.MaxAge);
        Assert.Equal(StreamConfigStorage.Memory, config.Storage);
        Assert.Equal(TimeSpan.FromSeconds(30), config.DuplicateWindow);
        Assert.True(config.AllowDirect);
        Assert.Equal($"{prefix}.>", config.Republish!.Src);
        Assert.Equal($"live.{prefix}.>", config.Republish.Dest);

        // And the worker uses it: a message round-trips through the configured subjects.
        await using var ws = await TestClient.ConnectAsync(third.WebSocketUrl);
        await ws.JoinAndWaitAsync("cfg.room");
        await ws.PublishAsync("cfg.room", "via custom stream");
        var msg = await ws.WaitForAsync(f => f.Type == "chat.message");
        Assert.Equal(1UL, msg.Seq);
    }

    [Theory]
    [InlineData("Bridge:Nats:MaxMessagesPerRoom", "0", "MaxMessagesPerRoom")]
    [InlineData("Bridge:Nats:LivePrefix", "rooms.live", "LivePrefix")]
    [InlineData("Bridge:Nats:StreamName", "has.dot", "StreamName")]
    [InlineData("Bridge:Connections:MaxFrameBytes", "10", "MaxFrameBytes")]
    [InlineData("Bridge:Connections:SendQueueCapacity", "0", "SendQueueCapacity")]
    [InlineData("Bridge:Connections:ConflatedQueueFrames", "2000", "ConflatedQueueFrames")]
    [InlineData("Bridge:Connections:ConflatedQueueBytes", "0", "ConflatedQueueBytes")]
    [InlineData("Bridge:Connections:ConflatedSendBufferBytes", "100", "ConflatedSendBufferBytes")]
    [InlineData("Bridge:WarmUp:Rooms", "0", "Bridge:WarmUp")]
    [InlineData("Bridge:WarmUp:MinRounds", "50", "Bridge:WarmUp")]
    [InlineData("Bridge:WarmUp:Timeout", "00:00:00.5", "Bridge:WarmUp")]
    public async Task Invalid_configuration_stops_the_worker_at_start_with_a_message_naming_the_key(string key, string value, string named)
    {
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => WorkerHost.StartAsync(nats.Server, (key, value)));
        Assert.Contains(named, ex.Message, StringComparison.Ordinal);
    }
}
