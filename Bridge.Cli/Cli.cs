using Bridge.Cli.Commands;

namespace Bridge.Cli;

/// <summary>The <c>bridgectl</c> command: parses the command line, runs one command, maps its outcome to an exit code.</summary>
internal static class Cli
{
    /// <summary>Options without a value.</summary>
    private static readonly HashSet<string> Flags = new(StringComparer.Ordinal) { "msgpack", "help" };

    private static string Usage => $"""
        usage: bridgectl <command> [options]
        commands:
        {TokenCommand.Usage}
        {CheckTokenCommand.Usage}
        {CheckConfigCommand.Usage}
        {PubCommand.Usage}
        {SubCommand.Usage}
          bench <scenario> --target URL ...
                                  the load harness (Bridge.LoadTests) against a deployment; see docs/benchmarks.md
        worker configuration (token, checktoken, checkconfig): read as the worker reads it, from --content-root DIR
          (appsettings.json and appsettings.<environment>.json; default: the current folder), environment variables
          (Bridge__Auth__HmacSecret=…), then --Section:Key=value arguments; --environment NAME (default: Production,
          or $ASPNETCORE_ENVIRONMENT / $DOTNET_ENVIRONMENT)
        {WorkerClient.Options}
        exit codes: 0 done, 1 refused or failed (the reason is printed), 2 bad command line
        """;

    public static async Task<int> RunAsync(string[] args)
    {
        using var cts = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) =>
        {
            e.Cancel = true;
            cts.Cancel();
        };

        try
        {
            var a = new CliArgs(args, Flags);
            return a.Command switch
            {
                "token" => await TokenCommand.RunAsync(a, cts.Token),
                "checktoken" => await CheckTokenCommand.RunAsync(a, cts.Token),
                "checkconfig" => await CheckConfigCommand.RunAsync(a, cts.Token),
                "pub" => await PubCommand.RunAsync(a, cts.Token),
                "sub" => await SubCommand.RunAsync(a, cts.Token),
                "bench" => await BenchCommand.RunAsync(args[1..], cts.Token),
                "help" or "--help" or "-h" => Help(0),
                _ => throw new UsageException($"unknown command '{a.Command}'"),
            };
        }
        catch (UsageException ex)
        {
            Console.Error.WriteLine($"bridge: {ex.Message}");
            Console.Error.WriteLine("run 'bridgectl help' for the commands and their options");
            return 2;
        }
        catch (CliFailure ex)
        {
            Console.Error.WriteLine($"bridge: {ex.Message}");
            return 1;
        }
        catch (OperationCanceledException) when (cts.IsCancellationRequested)
        {
            return 130;
        }
    }

    private static int Help(int code)
    {
        Console.Out.WriteLine(Usage);
        return code;
    }
}
