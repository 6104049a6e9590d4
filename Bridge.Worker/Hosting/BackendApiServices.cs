using Bridge.Worker.Backend;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Hosting;

/// <summary>What the backend API is made of, and where it is served (docs/protocol.md §13).</summary>
internal static class BackendApiServices
{
    public static IServiceCollection AddBackendApi(this IServiceCollection services)
    {
        BridgeApp.AddValidatedOptions<ApiOptions, ApiOptionsValidator>(services, ApiOptions.Section);
        // Loaded before the worker serves: TokenValidator refuses banned users' old tokens from the first request.
        services.AddSingleton<UserBans>();
        services.AddSingleton<Security.IRevokedTokens>(sp => sp.GetRequiredService<UserBans>());
        services.AddHostedService(sp => sp.GetRequiredService<UserBans>());
        services.AddSingleton<WorkerDirectory>();
        services.AddSingleton<WorkerScatter>();
        services.AddSingleton<LocalWorker>();
        services.AddSingleton<ApiKeys>();
        services.AddSingleton<ApiRateLimiter>();
        services.AddSingleton<ApiMetrics>();
        services.AddSingleton<BackendApi>();
        services.AddSingleton<ApiDispatcher>();
        services.AddSingleton<HttpApiEndpoint>();
        // The listener subscribes before the directory announces this worker (hosted services start in this order).
        services.AddHostedService<NatsApiListener>();
        services.AddHostedService(sp => sp.GetRequiredService<WorkerDirectory>());
        return services;
    }

    public static WebApplication MapBackendApi(this WebApplication app)
    {
        if (app.Services.GetRequiredService<IOptions<ApiOptions>>().Value.Enabled)
        {
            app.MapPost(HttpApiEndpoint.Pattern, (HttpContext context, string op, HttpApiEndpoint endpoint) => endpoint.HandleAsync(context, op));
        }

        return app;
    }
}
