using BenchmarkDotNet.Running;

namespace Bridge.Microbench;

internal static class Entry
{
    // Every benchmark in this assembly; pass BenchmarkDotNet's own arguments (--filter '*Payload*', --job short, --list flat).
    private static void Main(string[] args) => BenchmarkSwitcher.FromAssembly(typeof(Entry).Assembly).Run(args);
}
