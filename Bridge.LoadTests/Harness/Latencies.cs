using System.Diagnostics;
using HdrHistogram;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// The harness's latency histograms, in microseconds from 1 µs to an hour. HdrHistogram throws on a value above its
/// highest trackable one; recorded from a client's read loop, that exception used to end the loop and leave its socket
/// unread (a 100,000-message burst delivers for minutes, so a 60 s ceiling was crossed), so values are clamped to
/// the ceiling: a clamped value still counts, at the ceiling, and the max then reads as one hour.
/// </summary>
internal static class Latencies
{
    /// <summary>The highest value kept as measured: one hour, in microseconds.</summary>
    public const long HighestMicroseconds = 3_600_000_000;

    /// <summary>A histogram recorded from many read loops without a lock.</summary>
    public static LongConcurrentHistogram Create() => new(1, HighestMicroseconds, 3);

    extension(HistogramBase histogram)
    {
        /// <summary>Records <paramref name="microseconds"/>, clamped into [0, the histogram's highest trackable value].</summary>
        public void RecordMicroseconds(long microseconds) =>
            histogram.RecordValue(Math.Clamp(microseconds, 0, histogram.HighestTrackableValue));

        /// <summary>Records the time from <paramref name="startTs"/> to <paramref name="endTs"/> (<see cref="Stopwatch"/> timestamps).</summary>
        public void RecordElapsed(long startTs, long endTs) =>
            histogram.RecordMicroseconds((long)Stopwatch.GetElapsedTime(startTs, endTs).TotalMicroseconds);
    }
}
