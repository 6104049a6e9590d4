using System.Globalization;

namespace Bridge.LoadTests.Harness;

/// <summary>Command-line options: <c>--name value</c> pairs after the scenario or suite name.</summary>
internal sealed class Args(string[] args, string command = Args.DefaultCommand)
{
    public const string DefaultCommand = "dotnet run --project Bridge.LoadTests -c Release --";

    public string Command => args.Length > 0 ? args[0] : "help";

    public bool Has(string name) => Array.IndexOf(args, name) >= 0;

    public string? String(string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    /// <summary>Every value of an option given more than once (e.g. <c>--threshold</c>).</summary>
    public IReadOnlyList<string> All(string name) =>
        [.. args.Select((a, i) => (a, i)).Where(p => p.a == name && p.i + 1 < args.Length).Select(p => args[p.i + 1])];

    public int Int(string name, int fallback) => String(name) is { } s ? int.Parse(s, CultureInfo.InvariantCulture) : fallback;

    public double Double(string name, double fallback) => String(name) is { } s ? double.Parse(s, CultureInfo.InvariantCulture) : fallback;

    public TimeSpan Seconds(string name, double fallback) => TimeSpan.FromSeconds(Double(name, fallback));

    /// <summary>The command line as typed, for reports.</summary>
    public string Line => command + " " + string.Join(' ', args.Select((a, i) => i > 0 && Secret(args[i - 1]) ? "***" : a));

    /// <summary>Values never written to reports (they are written as ***).</summary>
    private static bool Secret(string option) => option is "--signing-key";
}
