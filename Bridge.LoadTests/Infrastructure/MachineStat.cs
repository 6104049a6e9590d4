using System.Globalization;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// The whole machine's CPU time by state (clock ticks, 100 Hz, summed over the cores) and its context switches, from the
/// first line and the <c>ctxt</c> line of /proc/stat. A replay's rate on a small machine depends on how much of the
/// cores' time went unused (a pipeline's stages waiting for each other: <see cref="Idle"/>) or to other guests of the
/// host (<see cref="Steal"/>, a virtual machine's cores taken away): the two explain most of the rate's swings between
/// runs that the processes' own CPU per message does not.
/// </summary>
internal readonly record struct MachineStat(long Busy, long Idle, long Steal, long ContextSwitches)
{
    /// <summary>Busy + idle + steal: all the cores' time in the interval.</summary>
    public long Total => Busy + Idle + Steal;

    /// <summary>The machine now; null where /proc/stat is missing or not in the Linux form.</summary>
    public static MachineStat? Read()
    {
        string[] lines;
        try
        {
            lines = File.ReadAllLines("/proc/stat");
        }
        catch (IOException)
        {
            return null;
        }
        catch (UnauthorizedAccessException)
        {
            return null;
        }

        // cpu  user nice system idle iowait irq softirq steal guest guest_nice (guest time is already inside user).
        var cpu = lines.FirstOrDefault(l => l.StartsWith("cpu ", StringComparison.Ordinal))?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var ctxt = lines.FirstOrDefault(l => l.StartsWith("ctxt ", StringComparison.Ordinal))?.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (cpu is not { Length: >= 9 } || ctxt is not { Length: 2 })
        {
            return null;
        }

        long At(int i) => long.Parse(cpu[i], CultureInfo.InvariantCulture);
        return new MachineStat(At(1) + At(2) + At(3) + At(6) + At(7), At(4) + At(5), At(8), long.Parse(ctxt[1], CultureInfo.InvariantCulture));
    }

    public static MachineStat operator -(MachineStat a, MachineStat b) =>
        new(a.Busy - b.Busy, a.Idle - b.Idle, a.Steal - b.Steal, a.ContextSwitches - b.ContextSwitches);

    public static MachineStat operator +(MachineStat a, MachineStat b) =>
        new(a.Busy + b.Busy, a.Idle + b.Idle, a.Steal + b.Steal, a.ContextSwitches + b.ContextSwitches);

    /// <summary>"idle 12%, steal 3% of the cores' time, 0.41 context switches per message".</summary>
    public string Describe(long messages) => Total == 0
        ? $"under one clock tick, {(double)ContextSwitches / Math.Max(1, messages):0.00} context switches per message"
        : $"idle {100.0 * Idle / Total:0}%, steal {100.0 * Steal / Total:0}% of the cores' time, {(double)ContextSwitches / Math.Max(1, messages):0.00} context switches per message";
}
