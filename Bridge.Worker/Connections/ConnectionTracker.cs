using System.Collections.Concurrent;
using System.Security.Cryptography;
using Bridge.Worker.Operations;

namespace Bridge.Worker.Connections;

/// <summary>The connections open on this worker, by id.</summary>
internal sealed class ConnectionTracker(BridgeMetrics metrics)
{
    private readonly ConcurrentDictionary<string, ClientSession> _sessions = new(StringComparer.Ordinal);

    // -1 while the worker runs; the reconnect spread (ms) once it shuts down.
    private int _shutdownSpreadMs = -1;

    public int Count => _sessions.Count;

    /// <summary>The open sessions, enumerated without a copy (a session opened or closed meanwhile may or may not be seen).</summary>
    public IEnumerable<ClientSession> Sessions
    {
        get
        {
            foreach (var pair in _sessions)
            {
                yield return pair.Value;
            }
        }
    }

    /// <summary>A new connection id: 96 random bits, URL-safe.</summary>
    public static string NewConnectionId() =>
        Convert.ToBase64String(RandomNumberGenerator.GetBytes(12)).Replace('+', '-').Replace('/', '_');

    public void Add(ClientSession session)
    {
        _sessions[session.ConnectionId] = session;
        metrics.ConnectionOpened(session.Transport);
        // A connection upgraded just as the drain began may be missing from the drain's pass over the sessions:
        // it is told here instead (Shutdown is once per session, so one seen by both is told once). The fence
        // orders the add before the read, against ShutdownAll's flag write before its pass.
        Interlocked.MemoryBarrier();
        if (Volatile.Read(ref _shutdownSpreadMs) is var spread and >= 0)
        {
            session.Shutdown(ReconnectDelay(spread));
        }
    }

    /// <summary>
    /// Tells every open connection, and every one added from now on, to reconnect elsewhere: each after its own
    /// random delay below <paramref name="spreadMs"/> milliseconds (see <see cref="ClientSession.Shutdown"/>).
    /// </summary>
    public void ShutdownAll(int spreadMs)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(spreadMs);
        Interlocked.Exchange(ref _shutdownSpreadMs, spreadMs);
        foreach (var session in Sessions)
        {
            session.Shutdown(ReconnectDelay(spreadMs));
        }
    }

    private static int ReconnectDelay(int spreadMs) => spreadMs == 0 ? 0 : Random.Shared.Next(spreadMs);

    public void Remove(ClientSession session)
    {
        if (_sessions.TryRemove(session.ConnectionId, out _))
        {
            metrics.ConnectionClosed(session.Transport, session.CloseRequested?.Code ?? Bridge.Contracts.CloseCodes.Normal);
        }
    }
}
