using System.Globalization;
using System.Text.RegularExpressions;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// dotnet-gcdump and dotnet-counters against a running worker (installed into tools/dotnet-tools by
/// scripts/ensure-dotnet-tools.sh), for the profiles behind docs/benchmarks.md.
/// </summary>
internal static partial class DotnetTools
{
    private static readonly Lazy<string> Folder = new(() => Run(Path.Combine(RepoPaths.Root, "scripts", "ensure-dotnet-tools.sh"), [], TimeSpan.FromMinutes(3)).Trim());

    /// <summary>
    /// Writes a gcdump of <paramref name="pid"/> (a full, blocking GC first) and returns its live managed bytes,
    /// in all (the report's "GC Heap bytes") and by type. A report row gives one size per type and a count; the
    /// size is exact for fixed-size types and only indicative for strings and arrays, so the rows can sum to less
    /// than the total.
    /// </summary>
    public static (long Total, IReadOnlyDictionary<string, (long Bytes, long Count)> Types) GcDump(int pid, string file)
    {
        Run(Path.Combine(Folder.Value, "dotnet-gcdump"), ["collect", "-p", pid.ToString(CultureInfo.InvariantCulture), "-o", file], TimeSpan.FromMinutes(2));
        var report = Run(Path.Combine(Folder.Value, "dotnet-gcdump"), ["report", file], TimeSpan.FromMinutes(1));
        File.WriteAllText(Path.ChangeExtension(file, ".txt"), report);
        var types = new Dictionary<string, (long, long)>(StringComparer.Ordinal);
        long total = 0;
        foreach (var line in report.Split('\n'))
        {
            if (line.EndsWith("GC Heap bytes", StringComparison.Ordinal))
            {
                total = long.Parse(line.Replace("GC Heap bytes", "", StringComparison.Ordinal).Trim(), NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            }

            var m = ReportLine().Match(line);
            if (!m.Success)
            {
                continue;
            }

            // The report splits a type into size buckets ("(Bytes > 1K)"); one row per type here.
            var type = m.Groups[3].Value.Trim();
            var count = long.Parse(m.Groups[2].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            var bytes = count * long.Parse(m.Groups[1].Value, NumberStyles.AllowThousands, CultureInfo.InvariantCulture);
            types[type] = types.TryGetValue(type, out var t) ? (t.Item1 + bytes, t.Item2 + count) : (bytes, count);
        }

        return (total, types);
    }

    /// <summary>The System.Runtime counters of <paramref name="pid"/> over a few seconds: last value of each.</summary>
    public static IReadOnlyDictionary<string, double> RuntimeCounters(int pid, string file)
    {
        Run(Path.Combine(Folder.Value, "dotnet-counters"),
            ["collect", "-p", pid.ToString(CultureInfo.InvariantCulture), "--counters", "System.Runtime", "--duration", "00:00:00:04",
             "--refresh-interval", "2", "--format", "csv", "-o", file], TimeSpan.FromMinutes(1));
        var values = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var line in File.ReadLines(file).Skip(1))
        {
            // Timestamp,Provider,Counter Name,Counter Type,Mean/Increment; the name may carry [tag=value].
            var last = line.LastIndexOf(',');
            var type = line.LastIndexOf(',', last - 1);
            var name = line.IndexOf(',', line.IndexOf(',') + 1);
            if (double.TryParse(line[(last + 1)..], CultureInfo.InvariantCulture, out var v))
            {
                values[line[(name + 1)..type]] = v;
            }
        }

        return values;
    }

    private static string Run(string file, string[] args, TimeSpan timeout)
    {
        // Called from synchronous code paths of the report (and once, lazily, for the install): blocking is fine here.
        var (code, output, error) = ChildProcess.RunAsync(file, args, timeout).GetAwaiter().GetResult();
        return code == 0
            ? output
            : throw new InvalidOperationException($"{Path.GetFileName(file)} {string.Join(' ', args)} exited with {code}: {error}");
    }

    [GeneratedRegex(@"^\s*([\d,]+)\s+([\d,]+)\s+(.+?)(?:\s+\(Bytes > [^)]*\))?\s+\[[^\]]*\]\s*$")]
    private static partial Regex ReportLine();
}
