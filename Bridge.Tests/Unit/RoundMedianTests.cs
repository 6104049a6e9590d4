using Bridge.LoadTests.Harness;

namespace Bridge.Tests.Unit;

/// <summary>How the load harness reads a goal from rounds run in turns (<see cref="RoundMedian"/>).</summary>
public sealed class RoundMedianTests
{
    [Fact]
    public void Each_round_pairs_the_side_with_the_baseline_of_the_same_round()
    {
        var ratios = RoundMedian.PairedRatios([400, 300, 200], [500, 300, 400]);

        Assert.Equal([0.8, 1.0, 0.5], ratios);
    }

    [Fact]
    public void One_lucky_baseline_round_does_not_decide_the_goal_as_the_best_of_each_side_did()
    {
        // The machine ran fast in round 3 for the baseline only: best ÷ best reads 400 / 520 ≈ 0.77.
        double[] bridge = [380, 400, 390, 395, 385];
        double[] bare = [420, 430, 520, 440, 425];

        var median = RoundMedian.Of(RoundMedian.PairedRatios(bridge, bare));

        Assert.Equal(380.0 / 420, median, 10); // rounds: 0.90, 0.93, 0.75, 0.90, 0.91
        Assert.True(median > bridge.Max() / bare.Max());
    }

    [Fact]
    public void A_round_that_lost_messages_counts_as_zero_and_pulls_the_median_down()
    {
        var median = RoundMedian.Of(RoundMedian.PairedRatios([0, 90, 0], [100, 100, 100]));

        Assert.Equal(0, median);
    }

    [Fact]
    public void A_round_with_no_baseline_rate_gives_no_ratio_and_is_left_out_of_the_median()
    {
        var ratios = RoundMedian.PairedRatios([50, 90, 80], [0, 100, 100]);

        Assert.True(double.IsNaN(ratios[0]));
        Assert.Equal(0.85, RoundMedian.Of(ratios), 10);
    }

    [Theory]
    [InlineData(new[] { 3.0 }, 3.0)]
    [InlineData(new[] { 5.0, 1.0, 3.0 }, 3.0)]
    [InlineData(new[] { 4.0, 1.0, 3.0, 2.0 }, 2.5)]
    public void The_median_is_the_middle_value_or_the_mean_of_the_middle_two(double[] values, double median) =>
        Assert.Equal(median, RoundMedian.Of(values));

    [Fact]
    public void No_values_have_no_median() => Assert.True(double.IsNaN(RoundMedian.Of([double.NaN])));

    [Fact]
    public void Rates_that_are_not_one_per_round_on_both_sides_are_refused() =>
        Assert.Throws<ArgumentException>(() => RoundMedian.PairedRatios([1, 2], [1]));

    [Fact]
    public void The_basis_names_the_number_of_rounds()
    {
        Assert.Equal("median of 5 rounds", RoundMedian.Basis(5));
        Assert.Equal("one round", RoundMedian.Basis(1));
    }
}
