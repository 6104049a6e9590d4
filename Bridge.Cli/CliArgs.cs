using System.Globalization;

namespace Bridge.Cli;

/// <summary>
/// A command line: the command, its options (<c>--name value</c> or <c>--name=value</c>; a flag has no value), its
/// positional arguments, and the worker configuration given on it: keys with a colon (<c>--Bridge:Auth:HmacSecret=…</c>)
/// and <c>--environment</c>, passed to the worker's configuration as its own command line would be.
/// </summary>
internal sealed class CliArgs
{
    private readonly Dictionary<string, List<string>> _options = new(StringComparer.Ordinal);
    private readonly HashSet<string> _used = new(StringComparer.Ordinal);

    public CliArgs(IReadOnlyList<string> args, IReadOnlySet<string> flags)
    {
        Command = args.Count > 0 ? args[0] : "help";
        for (var i = 1; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal) || arg.Length == 2)
            {
                Positional.Add(arg);
                continue;
            }

            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            var name = eq > 0 ? arg[2..eq] : arg[2..];
            string? value = eq > 0 ? arg[(eq + 1)..] : null;
            if (value is null && !flags.Contains(name))
            {
                if (i + 1 >= args.Count)
                {
                    throw new UsageException($"--{name} needs a value");
                }

                value = args[++i];
            }

            if (name.Contains(':', StringComparison.Ordinal) || name == "environment")
            {
                ConfigurationArgs.Add($"--{name}={value}");
                continue;
            }

            if (!_options.TryGetValue(name, out var values))
            {
                _options[name] = values = [];
            }

            values.Add(value ?? "true");
        }
    }

    public string Command { get; }

    public List<string> Positional { get; } = [];

    /// <summary>Worker configuration from the command line, in the worker's own form.</summary>
    public List<string> ConfigurationArgs { get; } = [];

    public bool Has(string name)
    {
        _used.Add(name);
        return _options.ContainsKey(name);
    }

    public string? String(string name)
    {
        _used.Add(name);
        return _options.TryGetValue(name, out var v) ? v[^1] : null;
    }

    public IReadOnlyList<string> All(string name)
    {
        _used.Add(name);
        return _options.TryGetValue(name, out var v) ? v : [];
    }

    public int Int(string name, int fallback, int min = int.MinValue)
    {
        var text = String(name);
        if (text is null)
        {
            return fallback;
        }

        return int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= min
            ? v
            : throw new UsageException($"--{name} must be an integer of at least {min}, not '{text}'");
    }

    public ulong? ULong(string name)
    {
        var text = String(name);
        return text is null ? null
            : ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var v) ? v
            : throw new UsageException($"--{name} must be a non-negative integer, not '{text}'");
    }

    /// <summary>A duration: <c>90s</c>, <c>15m</c>, <c>1h</c>, <c>7d</c>, or a TimeSpan (<c>01:30:00</c>).</summary>
    public TimeSpan Duration(string name, TimeSpan fallback)
    {
        var text = String(name);
        if (text is null)
        {
            return fallback;
        }

        var unit = text.Length > 1 ? text[^1] : ' ';
        if ("smhd".Contains(unit, StringComparison.Ordinal) && double.TryParse(text[..^1], NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n > 0)
        {
            return unit switch
            {
                's' => TimeSpan.FromSeconds(n),
                'm' => TimeSpan.FromMinutes(n),
                'h' => TimeSpan.FromHours(n),
                _ => TimeSpan.FromDays(n),
            };
        }

        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var span) && span > TimeSpan.Zero
            ? span
            : throw new UsageException($"--{name} must be a duration such as 90s, 15m, 1h or 7d, not '{text}'");
    }

    /// <summary>Refuses options the command did not ask for (a typo must not be ignored silently).</summary>
    public void RejectUnknown()
    {
        var unknown = _options.Keys.Where(k => !_used.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new UsageException($"unknown option{(unknown.Count > 1 ? "s" : "")} for '{Command}': {string.Join(", ", unknown.Select(u => "--" + u))}");
        }
    }
}

/// <summary>A command line the tool cannot act on: printed with the usage hint, exit code 2.</summary>
internal sealed class UsageException(string message) : Exception(message);
