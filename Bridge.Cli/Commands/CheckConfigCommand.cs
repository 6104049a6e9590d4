using Bridge.Worker.Nats;

namespace Bridge.Cli.Commands;

/// <summary>
/// <c>bridgectl checkconfig</c>: the checks the worker makes before it starts, without starting it: every options
/// validator (<c>ValidateOnStart</c>) and the signing keys (HS256 secret, JWKS file and URL loaded as at start).
/// Invalid: each failure on its own line, exit code 1.
/// </summary>
internal static class CheckConfigCommand
{
    public const string Usage = """
          checkconfig             validate the worker configuration without starting it (the worker's own validators,
                                  and its signing keys loaded as at start); each failure on a line, exit code 1
        """;

    public static async Task<int> RunAsync(CliArgs args, CancellationToken cancellationToken)
    {
        await using var config = WorkerConfig.Load(args);
        args.RejectUnknown();
        Console.Out.WriteLine($"configuration of {config.ContentRoot} (environment {config.Environment})");
        var failures = config.Validate();
        if (failures.Count > 0)
        {
            foreach (var f in failures)
            {
                Console.Out.WriteLine($"  invalid: {f}");
            }

            return 1;
        }

        var auth = config.Auth;
        var keys = await config.KeysAsync(cancellationToken);
        var nats = config.Options<NatsOptions>();
        Console.Out.WriteLine($"  NATS         {nats.Url} (stream {nats.StreamName})");
        Console.Out.WriteLine($"  signing keys {keys.Current.Count} ({Sources(auth)})");
        if (auth.AllowAnonymous)
        {
            Console.Out.WriteLine("  anonymous    ON: connections without a token may join and publish to every room (development only)");
        }

        if (!string.IsNullOrEmpty(auth.Issuer) || !string.IsNullOrEmpty(auth.Audience))
        {
            Console.Out.WriteLine($"  tokens need  iss={auth.Issuer ?? "(any)"} aud={auth.Audience ?? "(any)"}");
        }

        Console.Out.WriteLine("valid");
        return 0;
    }

    private static string Sources(Worker.Security.AuthOptions auth)
    {
        var sources = new List<string>();
        if (!string.IsNullOrEmpty(auth.HmacSecret))
        {
            sources.Add("HmacSecret");
        }

        if (!string.IsNullOrEmpty(auth.JwksPath))
        {
            sources.Add("JwksPath " + auth.JwksPath);
        }

        if (!string.IsNullOrEmpty(auth.JwksUrl))
        {
            sources.Add("JwksUrl " + auth.JwksUrl);
        }

        return sources.Count == 0 ? "none" : string.Join(", ", sources);
    }
}
