using Microsoft.Extensions.Options;

namespace Bridge.Worker.Limits;

/// <summary>Connection and message limits (section <c>Bridge:Limits</c>); 0 turns a count limit off. See docs/security.md.</summary>
internal sealed class LimitOptions
{
    public const string Section = "Bridge:Limits";

    /// <summary>Open connections of one user across all workers (counted in a NATS key-value bucket).</summary>
    public int MaxConnectionsPerUser { get; set; } = 5;

    /// <summary>Open connections from one client IP address on one worker.</summary>
    public int MaxConnectionsPerIp { get; set; } = 100;

    /// <summary>Open connections on one worker.</summary>
    public int MaxConnections { get; set; } = 50_000;

    /// <summary>Inbound frames per second per connection, sustained (token bucket refill).</summary>
    public int MessagesPerSecond { get; set; } = 50;

    /// <summary>Inbound frames a connection may send in a burst (token bucket size).</summary>
    public int MessageBurst { get; set; } = 100;

    /// <summary>Time a client has to send its request headers (Kestrel's RequestHeadersTimeout): slowloris guard.</summary>
    public TimeSpan HandshakeTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>Time an HTTP connection may sit idle between requests before Kestrel closes it.</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>NATS key-value bucket holding each user's connection counts per worker.</summary>
    public string ConnectionsBucket { get; set; } = "bridge_connections";

    /// <summary>
    /// How long a worker's count of a user stays valid without being refreshed (refreshed every third of it): a
    /// worker that dies stops counting against its users' limits after at most this long.
    /// </summary>
    public TimeSpan UserCountLease { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>
    /// Proxies (IP addresses or CIDR networks) whose <c>X-Forwarded-For</c> is trusted for the client IP. Loopback
    /// is always trusted. Behind a load balancer, list its addresses, or every client counts as the proxy's IP.
    /// </summary>
    public string[] TrustedProxies { get; set; } = [];
}

internal sealed class LimitOptionsValidator : IValidateOptions<LimitOptions>
{
    public ValidateOptionsResult Validate(string? name, LimitOptions o)
    {
        var failures = new List<string>();
        if (o.MaxConnectionsPerUser < 0 || o.MaxConnectionsPerIp < 0 || o.MaxConnections < 0)
        {
            failures.Add("Bridge:Limits:MaxConnectionsPerUser, MaxConnectionsPerIp and MaxConnections must be 0 (off) or positive.");
        }

        if (o.MessagesPerSecond < 1 || o.MessageBurst < 1)
        {
            failures.Add("Bridge:Limits:MessagesPerSecond and MessageBurst must be at least 1.");
        }

        if (o.HandshakeTimeout <= TimeSpan.Zero || o.IdleTimeout <= TimeSpan.Zero)
        {
            failures.Add("Bridge:Limits:HandshakeTimeout and IdleTimeout must be positive.");
        }

        if (o.UserCountLease < TimeSpan.FromSeconds(3))
        {
            failures.Add("Bridge:Limits:UserCountLease must be at least 3 s.");
        }

        if (string.IsNullOrWhiteSpace(o.ConnectionsBucket) || !o.ConnectionsBucket.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
        {
            failures.Add("Bridge:Limits:ConnectionsBucket must be a bucket name of [A-Za-z0-9_-].");
        }

        foreach (var proxy in o.TrustedProxies)
        {
            if (!System.Net.IPNetwork.TryParse(proxy, out _) && !System.Net.IPAddress.TryParse(proxy, out _))
            {
                failures.Add($"Bridge:Limits:TrustedProxies entry '{proxy}' must be an IP address or a CIDR network.");
            }
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
