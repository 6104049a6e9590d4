namespace Bridge.LoadTests.Harness;

/// <summary>
/// How a goal is read from rounds run in turns. Each round pairs a side's rate with the baseline's rate in the same
/// round (a change in the machine's speed between rounds touches both), and the goal is the median of those paired
/// ratios: on a machine whose speed drifts run to run, the best of each side was the ratio of two lucky rounds that
/// need not have been the same round.
/// </summary>
internal static class RoundMedian
{
    /// <summary>
    /// Each round's <paramref name="side"/> rate ÷ <paramref name="baseline"/> rate, in round order. A side that lost
    /// messages in a round has rate 0 there, so its ratio is 0 (and pulls the median down); a baseline at 0 gives no
    /// ratio for that round (NaN), which <see cref="Of"/> leaves out.
    /// </summary>
    /// <exception cref="ArgumentException">The two lists do not have one rate per round each.</exception>
    public static IReadOnlyList<double> PairedRatios(IReadOnlyList<double> side, IReadOnlyList<double> baseline)
    {
        if (side.Count != baseline.Count)
        {
            throw new ArgumentException($"paired rounds: {side.Count} rates against {baseline.Count} baseline rates", nameof(side));
        }

        return [.. side.Select((rate, round) => baseline[round] > 0 ? rate / baseline[round] : double.NaN)];
    }

    /// <summary>
    /// The median of the values that are numbers (NaN ones left out): the middle one, or the mean of the middle two for
    /// an even count; NaN when no value is a number.
    /// </summary>
    public static double Of(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToList();
        return sorted.Count == 0 ? double.NaN
            : sorted.Count % 2 == 1 ? sorted[sorted.Count / 2]
            : (sorted[(sorted.Count / 2) - 1] + sorted[sorted.Count / 2]) / 2;
    }

    /// <summary>How the goal rows read from rounds say what they are.</summary>
    public static string Basis(int rounds) => rounds == 1 ? "one round" : $"median of {rounds} rounds";
}
