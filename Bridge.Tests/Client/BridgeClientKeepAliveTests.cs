using System.Collections.Concurrent;
using System.Diagnostics;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>
/// The .NET client's keep-alive (<see cref="BridgeClientOptions.KeepAliveInterval"/>): <c>bridge.ping</c> after a
/// silence on the socket, and a dead connection after twice that. A quiet healthy connection to a real worker stays;
/// a server that goes silent (scripted: the real worker always answers) is dropped, and the client reconnects.
/// The slow reader's side (no ping while the client holds its socket back) is in <see cref="BridgeClientBacklogTests"/>.
/// </summary>
public sealed class BridgeClientKeepAliveTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private const int PingSent = 7021;
    private const int ConnectionDead = 7004;

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_quiet_connection_to_a_worker_is_pinged_and_kept_for_many_intervals(BridgeFormat format)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var logs = new CapturingLoggerProvider();
        using var loggers = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(worker.WebSocketUrl, format, o =>
        {
            o.KeepAliveInterval = TimeSpan.FromMilliseconds(300);
            o.LoggerFactory = loggers;
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();

        // Ten intervals with no traffic: a connection whose pings went unanswered would be dropped after two.
        await Task.Delay(TimeSpan.FromSeconds(3));

        Assert.True(states.Select(s => s.State).SequenceEqual([ConnectionState.Connecting, ConnectionState.Open]), string.Join(", ", states.Select(s => $"{s.State} {s.Reason}")));
        Assert.DoesNotContain(logs.Events, e => e.Id == ConnectionDead);
        Assert.True(logs.Events.Count(e => e.Id == PingSent) >= 4, $"{logs.Events.Count(e => e.Id == PingSent)} pings");
    }

    [Fact]
    public async Task A_server_that_goes_silent_after_welcome_is_dropped_after_two_intervals_and_the_client_reconnects()
    {
        var frames = new ConcurrentQueue<string>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            if (n == 1)
            {
                // Reads nothing, sends nothing: a frozen peer whose TCP connection is still up.
                await Task.Delay(TimeSpan.FromSeconds(8));
                return;
            }

            while (await socket.ReceiveAsync() is { } frame)
            {
                frames.Enqueue(frame["type"]!.GetValue<string>());
                if (frame["type"]!.GetValue<string>() == MessageTypes.Ping)
                {
                    await socket.SendAsync(new() { ["type"] = MessageTypes.Pong, ["id"] = frame["id"]!.GetValue<string>() });
                }
            }
        });
        var states = new ConcurrentQueue<(ConnectionStateChangedEventArgs State, long At)>();
        var interval = TimeSpan.FromSeconds(1);
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.KeepAliveInterval = interval;
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20);
        });
        client.StateChanged += (_, e) => states.Enqueue((e, Stopwatch.GetTimestamp()));
        await client.ConnectAsync();
        await Eventually.TrueAsync(() => states.Count(s => s.State.State == ConnectionState.Open) == 2, WaitLimit);

        var opened = states.First(s => s.State.State == ConnectionState.Open).At;
        var dropped = states.First(s => s.State.State == ConnectionState.Reconnecting);
        var after = Stopwatch.GetElapsedTime(opened, dropped.At);
        Assert.Contains($"a {MessageTypes.Ping} unanswered", dropped.State.Reason, StringComparison.Ordinal);
        // Not before two intervals of silence; within about three (the watchdog ticks every quarter interval at most).
        Assert.InRange(after, interval * 2, interval * 3.5);
        Assert.Equal(2, server.Connections);

        // The second connection answers its pings: it stays (four more intervals), pinged meanwhile.
        await Task.Delay(interval * 4);
        Assert.Equal(2, server.Connections);
        Assert.Contains(MessageTypes.Ping, frames);
    }
}
