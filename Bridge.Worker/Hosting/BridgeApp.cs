using Bridge.Worker.Backend;
using Bridge.Worker.Connections;
using Bridge.Worker.Handlers;
using Bridge.Worker.Limits;
using Bridge.Worker.Nats;
using Bridge.Worker.Operations;
using Bridge.Worker.Presence;
using Bridge.Worker.Publishing;
using Bridge.Worker.Rooms;
using Bridge.Worker.Security;
using Bridge.Worker.Transports;
using Bridge.Worker.Transports.Http;
using Bridge.Worker.Transports.LongPolling;
using Bridge.Worker.Transports.Sse;
using Bridge.Worker.Transports.WebSockets;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace Bridge.Worker.Hosting;

/// <summary>Composition root: what the worker is made of and which endpoints it serves.</summary>
internal static class BridgeApp
{
    /// <param name="args">Command-line arguments: configuration keys (<c>--Bridge:Nats:Url=…</c>), <c>--urls</c>, <c>--environment</c>.</param>
    /// <param name="configure">Runs after the worker's own setup (tests replace the logging).</param>
    /// <param name="contentRoot">Where appsettings*.json are read from. The worker's own folder by default, so they are
    /// found whatever the working directory; the <c>bridgectl</c> tool reads a deployment's folder with the worker's
    /// sources (appsettings, environment variables, command line) to check its configuration and tokens.</param>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null, string? contentRoot = null)
    {
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = contentRoot ?? AppContext.BaseDirectory });
        builder.Services.AddBridge();
        // Structured logs: JSON lines in production (for the log pipeline), readable lines in development.
        builder.Logging.ClearProviders();
        if (builder.Environment.IsDevelopment())
        {
            builder.Logging.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff ");
        }
        else
        {
            builder.Logging.AddJsonConsole(o =>
            {
                o.TimestampFormat = "O";
                o.IncludeScopes = true;
            });
        }

        // A failed start is reported by WorkerStartup in one line; the host's own record (a stack trace) is dropped.
        var console = builder.Services.Single(d => d.ServiceType == typeof(ILoggerProvider) && d.ImplementationType == typeof(ConsoleLoggerProvider));
        builder.Services.Remove(console);
        builder.Services.AddSingleton<ILoggerProvider>(sp => new HostStartFailureFilter(ActivatorUtilities.CreateInstance<ConsoleLoggerProvider>(sp)));

        // Request-start logs print the URL, and a URL may carry ?access_token=: tokens never reach the logs.
        builder.Logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", LogLevel.Warning);

        builder.WebHost.ConfigureKestrel(kestrel =>
        {
            // Long-poll cursors travel in the query and SSE resume ids in a header: room for 100 rooms' positions.
            kestrel.Limits.MaxRequestLineSize = 32 * 1024;
            kestrel.Limits.MaxRequestHeadersTotalSize = 64 * 1024;
        });
        configure?.Invoke(builder);
        var app = builder.Build();
        app.MapBridge();
        return app;
    }

    public static IServiceCollection AddBridge(this IServiceCollection services)
    {
        services.AddSingleton(TimeProvider.System);
        AddValidatedOptions<WorkerOptions, WorkerOptionsValidator>(services, WorkerOptions.Section);
        AddValidatedOptions<NatsOptions, NatsOptionsValidator>(services, NatsOptions.Section);
        AddValidatedOptions<ConnectionOptions, ConnectionOptionsValidator>(services, ConnectionOptions.Section);
        AddValidatedOptions<AuthOptions, AuthOptionsValidator>(services, AuthOptions.Section);
        AddValidatedOptions<LimitOptions, LimitOptionsValidator>(services, LimitOptions.Section);
        AddValidatedOptions<ShutdownOptions, ShutdownOptionsValidator>(services, ShutdownOptions.Section);
        AddValidatedOptions<PresenceOptions, PresenceOptionsValidator>(services, PresenceOptions.Section);
        AddValidatedOptions<WarmUpOptions, WarmUpOptionsValidator>(services, WarmUpOptions.Section);
        services.AddSingleton<IConfigureOptions<HostOptions>, HostShutdownTimeout>();
        services.AddSingleton<IConfigureOptions<Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions>, KestrelLimits>();
        services.AddSingleton<IConfigureOptions<Microsoft.AspNetCore.Builder.ForwardedHeadersOptions>, ForwardedHeadersSetup>();

        // Security and limits: the admission gate every transport passes first
        services.AddSingleton<SigningKeys>();
        services.AddHostedService(sp => sp.GetRequiredService<SigningKeys>());
        services.AddSingleton<TokenValidator>();
        services.AddSingleton<OriginPolicy>();
        services.AddSingleton<ConnectionLimits>();
        services.AddSingleton<MessageRateLimiter>();
        services.AddSingleton<ConnectionAdmission>();

        // NATS side
        services.AddSingleton<NatsContext>();
        services.AddHostedService<StreamSetup>();
        services.AddSingleton<RoomPublisher>();
        services.AddSingleton<PublishService>();
        services.AddSingleton<MessageFallbacks>();
        services.AddSingleton<RoomMessageReader>();
        // Batch direct gets on the room stream (history reads, the seams of many rooms at once, latest values).
        services.AddSingleton(sp =>
        {
            var connection = sp.GetRequiredService<NatsContext>().Connection;
            return new StreamDirectGet(connection, sp.GetRequiredService<IOptions<NatsOptions>>().Value.StreamName, connection.Opts.RequestTimeout);
        });
        services.AddSingleton<RoomHistory>();
        services.AddSingleton<IRoomLog>(sp => sp.GetRequiredService<RoomHistory>());
        services.AddSingleton<NatsRoomFeedFactory>();
        services.AddSingleton<IRoomFeedFactory>(sp => sp.GetRequiredService<NatsRoomFeedFactory>());
        services.AddHostedService<FeedCatchUp>();
        // After StreamSetup (which connects): creates its key-value bucket at start.
        services.AddSingleton<UserConnectionCounter>();
        services.AddHostedService(sp => sp.GetRequiredService<UserConnectionCounter>());
        services.AddSingleton<PresenceTracker>();
        services.AddHostedService(sp => sp.GetRequiredService<PresenceTracker>());
        services.AddSingleton<IRoomObserver>(sp => sp.GetRequiredService<PresenceTracker>());
        // Bans, the workers' directory and the NATS side of the backend API (after StreamSetup: they need NATS).
        services.AddBackendApi();

        // Rooms and connections
        services.AddSingleton<RoomRegistry>();
        services.AddSingleton<ConnectionTracker>();
        services.AddSingleton<RoomReader>();
        services.AddSingleton<RoomJoiner>();
        services.AddHostedService<StallDetector>();
        services.AddHostedService<ConnectionDrainer>();

        // Protocol: the handler table
        services.AddSingleton<IFrameHandler, JoinHandler>();
        services.AddSingleton<IFrameHandler, LeaveHandler>();
        services.AddSingleton<IFrameHandler, SyncHandler>();
        services.AddSingleton<IFrameHandler, AuthRefreshHandler>();
        services.AddSingleton<IFrameHandler, PresenceQueryHandler>();
        services.AddSingleton<IFrameHandler, PingHandler>();
        services.AddSingleton<PublishHandler>();
        services.AddSingleton<FrameDispatcher>();

        // Operations. The warm-up last: it joins rooms through everything above (readiness waits for it).
        services.AddSingleton<JoinWarmUp>();
        services.AddHostedService(sp => sp.GetRequiredService<JoinWarmUp>());
        services.AddSingleton<HealthEndpoints>();
        services.AddSingleton<BridgeMetrics>();
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddDetector(sp => new WorkerResource(sp.GetRequiredService<IOptions<WorkerOptions>>())))
            .WithMetrics(metrics => metrics.AddMeter(BridgeMetrics.MeterName).AddPrometheusExporter());

        // Transports: one host runs every connection's life; each endpoint adds its reading and writing
        services.AddSingleton<ConnectionHost>();
        services.AddSingleton<WebSocketEndpoint>();
        services.AddSingleton<SseEndpoint>();
        services.AddSingleton<PollEndpoint>();
        services.AddSingleton<PublishEndpoint>();
        return services;
    }

    public static WebApplication MapBridge(this WebApplication app)
    {
        // Client IPs (for the per-IP limit) from X-Forwarded-For, trusted only from Bridge:Limits:TrustedProxies.
        app.UseForwardedHeaders();

        // The demo dashboard at / (wwwroot: index.html, its script and the clients/js bundle); see README.
        // Static files need no token: the page gets one (or runs anonymous in development) before it connects.
        app.UseDefaultFiles();
        app.UseStaticFiles();

        // Before UseWebSockets: several frames per socket write while a backlog drains (FrameBatchingStream).
        FrameBatchingStream.UseUnder(app, WebSocketEndpoint.Path);
        app.UseWebSockets();
        app.Map(WebSocketEndpoint.Path, (HttpContext context, WebSocketEndpoint endpoint) => endpoint.HandleAsync(context));
        app.MapGet(SseEndpoint.Path, (HttpContext context, SseEndpoint endpoint) => endpoint.HandleAsync(context));
        app.MapGet(PollEndpoint.Path, (HttpContext context, PollEndpoint endpoint) => endpoint.HandleAsync(context));
        app.MapPost(PublishEndpoint.Pattern, (HttpContext context, string room, PublishEndpoint endpoint) => endpoint.HandleAsync(context, room));
        app.MapBackendApi();
        app.MapGet("/healthz", HealthEndpoints.Live);
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapGet("/readyz", (HealthEndpoints health, HttpContext context) => health.ReadyAsync(context.RequestAborted));
        return app;
    }

    internal static void AddValidatedOptions<TOptions, TValidator>(IServiceCollection services, string section)
        where TOptions : class
        where TValidator : class, IValidateOptions<TOptions>
    {
        services.AddOptions<TOptions>().BindConfiguration(section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<TOptions>, TValidator>();
    }
}
