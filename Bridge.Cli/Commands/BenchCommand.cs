namespace Bridge.Cli.Commands;

/// <summary><c>bridgectl bench</c>: the load harness, the same code as <c>dotnet run --project Bridge.LoadTests</c>.</summary>
internal static class BenchCommand
{
    public static Task<int> RunAsync(string[] args, CancellationToken cancellationToken) =>
        Bridge.LoadTests.LoadTestsMain.RunAsync(args, "bridgectl bench", cancellationToken);
}
