using System.Globalization;

namespace Bridge.LoadTests.Harness;

/// <summary>Command-line options: <c>--name value</c> pairs after the scenario or suite name.</summary>
internal sealed class Args(string[] args)
{
    public string Command => args.Length > 0 ? args[0] : "help";

    public bool Has(string name) => Array.IndexOf(args, name) >= 0;

    public string? String(string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public int Int(string name, int fallback) => String(name) is { } s ? int.Parse(s, CultureInfo.InvariantCulture) : fallback;

    public double Double(string name, double fallback) => String(name) is { } s ? double.Parse(s, CultureInfo.InvariantCulture) : fallback;

    public TimeSpan Seconds(string name, double fallback) => TimeSpan.FromSeconds(Double(name, fallback));

    /// <summary>The command line as typed, for reports.</summary>
    public string Line => "dotnet run --project Bridge.LoadTests -c Release -- " + string.Join(' ', args);
}
