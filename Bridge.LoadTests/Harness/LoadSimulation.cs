using System.Diagnostics;

namespace Bridge.LoadTests.Harness;

/// <summary>How a scenario loads its target, declared in its <see cref="ScenarioSpec"/> and executed by the harness.</summary>
internal abstract record LoadSimulation
{
    /// <summary>Open <paramref name="Connections"/> at once (in batches) and keep them open for the whole run.</summary>
    internal sealed record KeepConstant(int Connections) : LoadSimulation
    {
        public override string ToString() => $"keep {Connections:N0} connections";
    }

    /// <summary>Open connections at <paramref name="PerSecond"/> until <paramref name="Target"/> are open.</summary>
    internal sealed record RampConnections(int PerSecond, int Target) : LoadSimulation
    {
        public override string ToString() => $"ramp to {Target:N0} connections at {PerSecond:N0}/s";
    }

    /// <summary>Publish <paramref name="PerSecond"/> messages a second through warm-up and duration.</summary>
    internal sealed record InjectAtRate(int PerSecond) : LoadSimulation
    {
        public override string ToString() => $"inject {PerSecond:N0} msg/s";
    }

    /// <summary>Publish <paramref name="Messages"/> as fast as the publisher allows (saturation).</summary>
    internal sealed record Burst(int Messages) : LoadSimulation
    {
        public override string ToString() => $"burst of {Messages:N0} messages";
    }
}

/// <summary>Pacing for rates: each tick does the work that is due by now, so the rate holds without per-item timers.</summary>
internal static class Pace
{
    /// <summary>
    /// Calls <paramref name="action"/> with 0, 1, 2, ... at <paramref name="perSecond"/> until <paramref name="during"/>
    /// has passed or <paramref name="limit"/> items were done. Returns how many were done.
    /// </summary>
    public static async Task<long> RunAsync(double perSecond, TimeSpan during, Func<long, ValueTask> action, CancellationToken cancellationToken, long limit = long.MaxValue)
    {
        var sw = Stopwatch.StartNew();
        long done = 0;
        while (sw.Elapsed < during && done < limit)
        {
            var due = Math.Min(limit, (long)(sw.Elapsed.TotalSeconds * perSecond) + 1);
            while (done < due)
            {
                await action(done++);
            }

            // A 1 ms timer fires every ~1-2 ms on Linux: enough resolution for rates of thousands a second.
            await Task.Delay(1, cancellationToken);
        }

        return done;
    }
}
