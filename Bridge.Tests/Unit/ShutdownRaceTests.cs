using Bridge.Tests.Infrastructure;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Microsoft.Extensions.DependencyInjection;

namespace Bridge.Tests.Unit;

/// <summary>
/// The drain tells every connection to reconnect elsewhere; a connection upgraded in the instant the drain begins
/// (accepted, not yet in the tracker when the drain passes over it) must be told too, or it stays open until the
/// drain times out and is then reset without its 1012 (seen as a flaky RunScriptTests run on a loaded machine).
/// </summary>
public sealed class ShutdownRaceTests
{
    [Fact]
    public void A_connection_added_after_the_drain_began_is_closed_with_1012_and_every_session_is_told_once()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var tracker = new ConnectionTracker(new BridgeMetrics(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), TimeProvider.System));
        var before = Session("before", TransportKind.WebSocket);
        var stream = Session("stream", TransportKind.Sse);
        tracker.Add(before);
        tracker.Add(stream);

        tracker.ShutdownAll(spreadMs: 0);
        var late = Session("late", TransportKind.WebSocket);
        var lateStream = Session("late-stream", TransportKind.Sse);
        tracker.Add(late);
        tracker.Add(lateStream);
        tracker.ShutdownAll(spreadMs: 0); // a second pass tells nobody twice

        Assert.Equal(CloseCodes.ServiceRestart, before.CloseRequested?.Code);
        Assert.Equal(CloseCodes.ServiceRestart, late.CloseRequested?.Code);
        Assert.Equal("service restart; reconnect_after_ms=0", late.CloseRequested?.Reason);
        Assert.Equal(1, ShutdownNotices(stream));
        Assert.Equal(1, ShutdownNotices(lateStream));
    }

    [Fact]
    public void Connections_added_while_the_worker_runs_are_left_open()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var tracker = new ConnectionTracker(new BridgeMetrics(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), TimeProvider.System));
        var session = Session("running", TransportKind.WebSocket);
        tracker.Add(session);

        Assert.Null(session.CloseRequested);
        Assert.Equal(0, session.Queue.Reader.Count);
    }

    private static ClientSession Session(string id, TransportKind transport) =>
        Sessions.New(id, transport: transport);

    private static int ShutdownNotices(ClientSession session)
    {
        var notices = 0;
        while (session.Queue.Reader.TryRead(out var frame))
        {
            notices += frame.Type == MessageTypes.ServerShutdown ? 1 : 0;
        }

        return notices;
    }
}
