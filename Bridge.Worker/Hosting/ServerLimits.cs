using System.Net;
using Bridge.Worker.Limits;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Hosting;

/// <summary>Kestrel's slowloris guards from <see cref="LimitOptions"/>: time to send headers, and idle keep-alive time.</summary>
internal sealed class KestrelLimits(IOptions<LimitOptions> limits) : IConfigureOptions<KestrelServerOptions>
{
    public void Configure(KestrelServerOptions options)
    {
        options.Limits.RequestHeadersTimeout = limits.Value.HandshakeTimeout;
        options.Limits.KeepAliveTimeout = limits.Value.IdleTimeout;
    }
}

/// <summary>Which proxies may set the client IP through <c>X-Forwarded-For</c>.</summary>
internal sealed class ForwardedHeadersSetup(IOptions<LimitOptions> limits) : IConfigureOptions<ForwardedHeadersOptions>
{
    public void Configure(ForwardedHeadersOptions options)
    {
        options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
        foreach (var proxy in limits.Value.TrustedProxies)
        {
            if (IPAddress.TryParse(proxy, out var address))
            {
                options.KnownProxies.Add(address);
            }
            else
            {
                options.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(proxy));
            }
        }
    }
}
