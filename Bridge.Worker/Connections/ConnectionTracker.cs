using System.Collections.Concurrent;
using System.Security.Cryptography;
using Bridge.Worker.Operations;

namespace Bridge.Worker.Connections;

/// <summary>The connections open on this worker, by id.</summary>
internal sealed class ConnectionTracker(BridgeMetrics metrics)
{
    private readonly ConcurrentDictionary<string, ClientSession> _sessions = new(StringComparer.Ordinal);

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

    public BridgeMetrics Metrics => metrics;

    public void Add(ClientSession session)
    {
        _sessions[session.ConnectionId] = session;
        metrics.ConnectionOpened(session.Transport);
    }

    public void Remove(ClientSession session)
    {
        if (_sessions.TryRemove(session.ConnectionId, out _))
        {
            metrics.ConnectionClosed(session.Transport, session.CloseRequested?.Code ?? Bridge.Contracts.CloseCodes.Normal);
        }
    }
}
