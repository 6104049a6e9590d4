using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Bridge.Worker.Hosting;
using Bridge.Worker.Security;
using Microsoft.Extensions.Options;

namespace Bridge.Cli;

/// <summary>
/// The worker's configuration as the worker itself would read it: the worker's composition
/// (<see cref="BridgeApp.Build"/>) with its sources (appsettings.json and appsettings.{environment}.json in the
/// content root, environment variables such as <c>Bridge__Auth__HmacSecret</c>, then the command line), its options
/// types and validators, its signing-key loader and its token validator. Nothing is started: no port, no NATS.
/// </summary>
internal sealed class WorkerConfig : IAsyncDisposable
{
    private readonly WebApplication _app;
    private bool _keysLoaded;

    private WorkerConfig(WebApplication app, string contentRoot)
    {
        _app = app;
        ContentRoot = contentRoot;
    }

    public string ContentRoot { get; }

    public string Environment => _app.Environment.EnvironmentName;

    public IServiceProvider Services => _app.Services;

    /// <summary><c>--content-root DIR</c> (default: the current directory) and the configuration arguments.</summary>
    public static WorkerConfig Load(CliArgs args)
    {
        var root = Path.GetFullPath(args.String("content-root") ?? Directory.GetCurrentDirectory());
        if (!Directory.Exists(root))
        {
            throw new UsageException($"--content-root '{root}' is not a folder");
        }

        var app = BridgeApp.Build([.. args.ConfigurationArgs], builder => builder.Logging.ClearProviders(), root);
        return new WorkerConfig(app, root);
    }

    public T Options<T>() where T : class => _app.Services.GetRequiredService<IOptions<T>>().Value;

    /// <summary>Every option the worker validates at start, with its validators. Empty when all are valid.</summary>
    public IReadOnlyList<string> Validate()
    {
        try
        {
            _app.Services.GetRequiredService<IStartupValidator>().Validate();
            return [];
        }
        catch (OptionsValidationException ex)
        {
            return [.. ex.Failures];
        }
        catch (AggregateException ex)
        {
            return [.. ex.Flatten().InnerExceptions.SelectMany(e => e is OptionsValidationException o ? o.Failures : [e.Message])];
        }
        catch (InvalidOperationException ex)
        {
            return [ex.Message]; // a value that does not convert to its type, e.g. "Failed to convert configuration value at 'Bridge:Auth:ClockSkew'"
        }
    }

    /// <summary>The authentication options, validated; throws <see cref="CliFailure"/> with every failure.</summary>
    public AuthOptions Auth
    {
        get
        {
            try
            {
                return Options<AuthOptions>();
            }
            catch (OptionsValidationException ex)
            {
                throw new CliFailure(string.Join(System.Environment.NewLine, ex.Failures));
            }
            catch (InvalidOperationException ex)
            {
                throw new CliFailure(ex.Message);
            }
        }
    }

    /// <summary>Loads the signing keys as the worker does at start (HS256 secret, JWKS file, JWKS URL).</summary>
    public async Task<SigningKeys> KeysAsync(CancellationToken cancellationToken)
    {
        _ = Auth; // the options' own failures first
        var keys = _app.Services.GetRequiredService<SigningKeys>();
        if (!_keysLoaded)
        {
            try
            {
                await keys.StartAsync(cancellationToken);
            }
            catch (InvalidOperationException ex)
            {
                throw new CliFailure(ex.Message);
            }

            _keysLoaded = true;
        }

        return keys;
    }

    public async ValueTask DisposeAsync()
    {
        if (_keysLoaded)
        {
            await _app.Services.GetRequiredService<SigningKeys>().StopAsync(CancellationToken.None);
        }

        await _app.DisposeAsync();
    }
}

/// <summary>The command did not succeed (a refused token, an invalid configuration, a failed publish): exit code 1.</summary>
internal sealed class CliFailure(string message) : Exception(message);
