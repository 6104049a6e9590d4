using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Integration;

/// <summary>The shutdown sequence: readiness off at once, new connections refused, every transport told when to reconnect.</summary>
public sealed partial class ShutdownTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private const int StatusCodes503 = 503;

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };

    [GeneratedRegex(@"^service restart; reconnect_after_ms=(\d+)$")]
    private static partial Regex RestartReason();

    [Fact]
    public async Task Shutdown_turns_readiness_off_refuses_new_clients_and_tells_each_transport_when_to_reconnect()
    {
        var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Shutdown:ReconnectSpread", "00:00:02"));
        var room = Names.Room("sd");
        await using var ws = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await ws.JoinAndWaitAsync(room);
        // A client that never answers the close keeps the drain open for CloseTimeout: the window to look in.
        await using var stuck = await TestClient.ConnectAsync(worker.WebSocketUrl, startReading: false);
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, room);
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        var poll = Http.GetStringAsync(new Uri(worker.HttpUrl, $"/poll?rooms={room}"));
        await Task.Delay(300);
        Assert.False(poll.IsCompleted);

        var stopping = worker.DisposeAsync().AsTask();

        // Readiness is false at once (asked in-process: Kestrel has already stopped listening).
        await Eventually.TrueAsync(async () =>
        {
            var result = await worker.Get<Bridge.Worker.Hosting.HealthEndpoints>().ReadyAsync(CancellationToken.None);
            var context = new Microsoft.AspNetCore.Http.DefaultHttpContext { RequestServices = worker.Services };
            context.Response.Body = new MemoryStream();
            await result.ExecuteAsync(context);
            return context.Response.StatusCode == StatusCodes503;
        }, TimeSpan.FromSeconds(5), "readiness turns false while draining");

        // New clients are not accepted (the listener is closed, or the admission answers 503).
        using (var late = new ClientWebSocket())
        {
            late.Options.CollectHttpResponseDetails = true;
            await Assert.ThrowsAnyAsync<WebSocketException>(() => late.ConnectAsync(worker.WebSocketUrl, CancellationToken.None));
            Assert.True(late.HttpStatusCode is 0 or HttpStatusCode.ServiceUnavailable, $"{late.HttpStatusCode}");
        }

        Assert.Equal((WebSocketCloseStatus)CloseCodes.ServiceRestart, await ws.Closed.WaitAsync(TimeSpan.FromSeconds(10)));
        var reason = RestartReason().Match(ws.Socket.CloseStatusDescription ?? "");
        Assert.True(reason.Success, ws.Socket.CloseStatusDescription);
        Assert.InRange(int.Parse(reason.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 0, 2000);

        var shutdown = await sse.WaitForAsync(e => e.Event == MessageTypes.ServerShutdown, TimeSpan.FromSeconds(10));
        Assert.InRange(shutdown.Json["payload"]!["reconnect_after_ms"]!.GetValue<int>(), 0, 2000);

        var answer = JsonNode.Parse(await poll.WaitAsync(TimeSpan.FromSeconds(10)))!;
        Assert.Equal(MessageTypes.ServerShutdown, answer["shutdown"]!["type"]!.GetValue<string>());
        Assert.InRange(answer["shutdown"]!["payload"]!["reconnect_after_ms"]!.GetValue<int>(), 0, 2000);
        Assert.False(string.IsNullOrEmpty(answer["cursor"]!.GetValue<string>()));

        await stopping.WaitAsync(TimeSpan.FromSeconds(30));
    }

    [Fact]
    public async Task A_worker_whose_nats_server_stopped_first_stops_without_waiting_for_it()
    {
        // nats-server gone before the worker (a killed `make run` signals both at once; an outage): the stop must not
        // wait for a reconnect to delete the worker's directory entry (it expires by its TTL). It waited for the host's
        // shutdown timeout (WorkerHost caps the stop at 10 s; the default DrainTimeout is 25 s).
        await using var own = await Bridge.Testing.NatsServerProcess.StartAsync();
        var worker = await WorkerHost.StartAsync(own);
        await using (var ws = await TestClient.ConnectAsync(worker.WebSocketUrl))
        {
            await ws.JoinAndWaitAsync(Names.Room("gone"));
        }

        own.Kill();
        await Task.Delay(500);
        var stopping = System.Diagnostics.Stopwatch.StartNew();
        await worker.DisposeAsync();
        Assert.True(stopping.Elapsed < TimeSpan.FromSeconds(6), $"the stop took {stopping.Elapsed.TotalSeconds:N1} s with NATS gone");
    }
}

public sealed class PollHeartbeatTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task A_waiting_poll_sends_whitespace_heartbeats_before_its_answer()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server,
            ("Bridge:Connections:SseHeartbeatInterval", "00:00:01"), ("Bridge:Connections:PollTimeout", "00:00:04"));
        using var http = new HttpClient();
        var started = DateTime.UtcNow;
        using var response = await http.GetAsync(new Uri(worker.HttpUrl, $"/poll?rooms={Names.Room("hb")}"), HttpCompletionOption.ResponseHeadersRead);
        var headers = DateTime.UtcNow - started;
        var body = await response.Content.ReadAsStringAsync();
        var total = DateTime.UtcNow - started;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(headers < TimeSpan.FromSeconds(3), $"headers after {headers}: no heartbeat before the 4 s answer");
        Assert.True(total >= TimeSpan.FromSeconds(3.5), $"answered after {total}");
        Assert.StartsWith("\n", body, StringComparison.Ordinal);
        var answer = JsonNode.Parse(body)!;
        Assert.Empty(answer["messages"]!.AsArray());
        Assert.False(string.IsNullOrEmpty(answer["cursor"]!.GetValue<string>()));
    }
}
