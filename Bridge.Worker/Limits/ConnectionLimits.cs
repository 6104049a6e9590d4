using System.Collections.Concurrent;
using System.Net;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Limits;

/// <summary>This worker's connection counts: in all, and per client IP address.</summary>
internal sealed class ConnectionLimits(IOptions<LimitOptions> options)
{
    private readonly ConcurrentDictionary<IPAddress, int> _perIp = new();
    private int _total;

    public int Total => Volatile.Read(ref _total);

    /// <summary>Counts a connection from <paramref name="ip"/>, or says which limit refuses it (<c>worker</c> or <c>ip</c>).</summary>
    public string? TryAcquire(IPAddress? ip)
    {
        var o = options.Value;
        if (Interlocked.Increment(ref _total) > o.MaxConnections && o.MaxConnections > 0)
        {
            Interlocked.Decrement(ref _total);
            return "worker";
        }

        if (ip is null || o.MaxConnectionsPerIp == 0)
        {
            return null;
        }

        var refused = false;
        _perIp.AddOrUpdate(ip, 1, (_, n) =>
        {
            refused = n >= o.MaxConnectionsPerIp;
            return refused ? n : n + 1;
        });
        if (refused)
        {
            Interlocked.Decrement(ref _total);
            return "ip";
        }

        return null;
    }

    public void Release(IPAddress? ip)
    {
        Interlocked.Decrement(ref _total);
        if (ip is null || options.Value.MaxConnectionsPerIp == 0)
        {
            return;
        }

        while (_perIp.TryGetValue(ip, out var n))
        {
            if (n <= 1 ? _perIp.TryRemove(new KeyValuePair<IPAddress, int>(ip, n)) : _perIp.TryUpdate(ip, n - 1, n))
            {
                return;
            }
        }
    }
}
