using Microsoft.Extensions.DependencyInjection;
using System.Globalization;

namespace Bridge.Cli.Commands;

/// <summary>
/// <c>bridgectl checktoken</c>: the worker's own token check (<see cref="Worker.Security.TokenValidator"/>) against the
/// configured keys: the user and grants a connection with this token would get, or the reason it would be refused
/// (the same reason and message a client gets in its 401).
/// </summary>
internal static class CheckTokenCommand
{
    public const string Usage = """
          checktoken TOKEN | -    the token (or '-': read it from stdin) checked against the configured keys as the worker
                                  checks it: prints the user, expiry and grants, or why it is refused (exit code 1)
        """;

    public static async Task<int> RunAsync(CliArgs args, CancellationToken cancellationToken)
    {
        await using var config = WorkerConfig.Load(args);
        args.RejectUnknown();
        var token = args.Positional.Count == 1 ? args.Positional[0] : throw new UsageException("checktoken needs one TOKEN (or '-' to read it from stdin)");
        if (token == "-")
        {
            token = (await Console.In.ReadToEndAsync(cancellationToken)).Trim();
        }

        var keys = await config.KeysAsync(cancellationToken);
        var validator = config.Services.GetRequiredService<Worker.Security.TokenValidator>();
        var check = await validator.ValidateAsync(token);
        if (check.Identity is not { } identity)
        {
            Console.Out.WriteLine($"refused ({check.Reason}): {check.Message}");
            if (keys.Current.Count == 0)
            {
                Console.Out.WriteLine("note: no signing key is configured, so every token is refused (see checkconfig)");
            }

            return 1;
        }

        Console.Out.WriteLine("valid");
        Console.Out.WriteLine($"  sub          {identity.Subject}");
        if (identity.Expires is { } exp)
        {
            var left = exp - DateTimeOffset.UtcNow;
            Console.Out.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  exp          {exp:yyyy-MM-ddTHH:mm:ssZ} (in {left:d\\.hh\\:mm\\:ss})"));
        }

        Console.Out.WriteLine($"  may join     {Describe(identity.Subscribe)}");
        Console.Out.WriteLine($"  may publish  {Describe(identity.Publish)}");
        if (identity.PrivateRoom is { } own)
        {
            Console.Out.WriteLine($"  own rooms    {own} and {own}.> (always granted)");
        }

        return 0;
    }

    private static string Describe(Worker.Security.RoomGrant grant) =>
        grant.Patterns.Count == 0 ? "(no rooms)" : string.Join(' ', grant.Patterns.Select(p => p.Text));
}
