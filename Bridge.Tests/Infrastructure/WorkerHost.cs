using Bridge.Testing;
using Bridge.Worker.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Bridge.Tests.Infrastructure;

/// <summary>The real worker on real Kestrel at 127.0.0.1:0, in this process.</summary>
public sealed class WorkerHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private WorkerHost(WebApplication app, string id)
    {
        _app = app;
        Id = id;
    }

    public string Id { get; }

    public Uri HttpUrl { get; private set; } = null!;

    public Uri WebSocketUrl => new($"ws://{HttpUrl.Authority}/ws");

    public IServiceProvider Services => _app.Services;

    public T Get<T>() where T : notnull => _app.Services.GetRequiredService<T>();

    public static Task<WorkerHost> StartAsync(NatsServerProcess nats, params (string Key, string Value)[] settings) =>
        StartAsync(nats, null, settings);

    /// <summary>
    /// A worker on a stream and room prefix of its own (names made here), so a test can count what is on that stream
    /// alone: the worker, the stream's name, and the subject prefix of its rooms.
    /// </summary>
    public static async Task<(WorkerHost Worker, string Stream, string Prefix)> StartOnOwnStreamAsync(NatsServerProcess nats)
    {
        var stream = "S" + Guid.NewGuid().ToString("N")[..8].ToUpperInvariant();
        var prefix = "r" + Guid.NewGuid().ToString("N")[..6];
        var worker = await StartAsync(
            nats, ("Bridge:Nats:StreamName", stream), ("Bridge:Nats:RoomPrefix", prefix), ("Bridge:Nats:LivePrefix", "live." + prefix));
        return (worker, stream, prefix);
    }

    /// <param name="configure">Runs after the test logging setup: e.g. adds a logger provider.</param>
    public static async Task<WorkerHost> StartAsync(NatsServerProcess nats, Action<WebApplicationBuilder>? configure, params (string Key, string Value)[] settings)
    {
        var id = "w-" + Guid.NewGuid().ToString("N")[..8];
        var args = new List<string>
        {
            "--urls=http://127.0.0.1:0",
            $"--Bridge:Nats:Url={nats.Url}",
            $"--Bridge:Worker:Id={id}",
            // Defaults for the tests that are not about security (those override them: later settings win):
            // anonymous users, and no IP or rate limits for tests that open many connections from loopback.
            "--Bridge:Auth:AllowAnonymous=true",
            "--Bridge:Limits:MaxConnectionsPerIp=0",
            "--Bridge:Limits:MessagesPerSecond=1000000",
            "--Bridge:Limits:MessageBurst=1000000",
            // No join-path warm-up (its rooms would show in tests' counts); the warm-up's own tests turn it on.
            "--Bridge:WarmUp:Enabled=false",
        };
        args.AddRange(settings.Select(s => $"--{s.Key}={s.Value}"));
        var app = BridgeApp.Build([.. args], builder =>
        {
            builder.Logging.ClearProviders();
            // BRIDGE_TEST_LOGS=1 shows the worker's logs on the test console.
            if (Environment.GetEnvironmentVariable("BRIDGE_TEST_LOGS") == "1")
            {
                builder.Logging.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff ");
                builder.Logging.SetMinimumLevel(LogLevel.Debug);
            }

            configure?.Invoke(builder);
        });
        var host = new WorkerHost(app, id);
        await app.StartAsync();
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        host.HttpUrl = new Uri(addresses.First());
        return host;
    }

    public async ValueTask DisposeAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _app.StopAsync(cts.Token);
        }
        finally
        {
            await _app.DisposeAsync();
        }
    }
}
