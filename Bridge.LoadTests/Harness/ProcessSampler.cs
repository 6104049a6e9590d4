using System.Diagnostics;
using Bridge.LoadTests.Infrastructure;

namespace Bridge.LoadTests.Harness;

/// <summary>
/// Samples CPU and resident memory of the processes under test (worker, nats-server, peers) from /proc twice a
/// second while a scenario runs: average CPU over the measured window, peak and end RSS.
/// </summary>
internal sealed class ProcessSampler : IDisposable
{
    private readonly List<Watched> _watched = [];
    private readonly Timer _timer;

    public ProcessSampler() => _timer = new Timer(_ => Sample(), null, TimeSpan.Zero, TimeSpan.FromMilliseconds(500));

    public IReadOnlyList<Watched> Processes
    {
        get
        {
            lock (_watched)
            {
                return [.. _watched];
            }
        }
    }

    public void Watch(string name, int pid)
    {
        var w = new Watched(name, pid);
        w.Sample();
        lock (_watched)
        {
            _watched.Add(w);
        }
    }

    /// <summary>Stops sampling <paramref name="pid"/> and leaves it out of the report (a process of an earlier round, gone).</summary>
    public void Unwatch(int pid)
    {
        lock (_watched)
        {
            _watched.RemoveAll(w => w.Pid == pid);
        }
    }

    public void MarkMeasureStart()
    {
        foreach (var w in Processes)
        {
            w.MarkStart();
        }
    }

    public void MarkMeasureEnd()
    {
        foreach (var w in Processes)
        {
            w.MarkEnd();
        }
    }

    private void Sample()
    {
        foreach (var w in Processes)
        {
            w.Sample();
        }
    }

    public void Dispose()
    {
        _timer.Dispose();
        Sample();
    }

    internal sealed class Watched(string name, int pid)
    {
        private readonly object _gate = new();
        private TimeSpan _lastCpu;
        private long _lastTs = Stopwatch.GetTimestamp();
        private TimeSpan? _startCpu;
        private long _startTs;
        private TimeSpan? _endCpu;
        private long _endTs;

        public string Name => name;

        public int Pid => pid;

        /// <summary>CPU over the last sampling interval, in % of one core.</summary>
        public double CurrentCpuPercent { get; private set; }

        public long RssBytes { get; private set; }

        public long PeakRssBytes { get; private set; }

        public long? RssAtStart { get; private set; }

        public long? RssAtEnd { get; private set; }

        /// <summary>Average CPU over the measured window, in % of one core.</summary>
        public double? MeasuredCpuPercent
        {
            get
            {
                lock (_gate)
                {
                    if (_startCpu is not { } start)
                    {
                        return null;
                    }

                    var end = _endCpu ?? _lastCpu;
                    var wall = Stopwatch.GetElapsedTime(_startTs, _endCpu is null ? _lastTs : _endTs);
                    return wall > TimeSpan.Zero ? (end - start) / wall * 100 : null;
                }
            }
        }

        public void Sample()
        {
            try
            {
                var cpu = ProcessStats.CpuTime(pid);
                var rss = ProcessStats.RssBytes(pid);
                var now = Stopwatch.GetTimestamp();
                lock (_gate)
                {
                    var wall = Stopwatch.GetElapsedTime(_lastTs, now);
                    if (wall > TimeSpan.FromMilliseconds(100) && _lastCpu > TimeSpan.Zero)
                    {
                        CurrentCpuPercent = (cpu - _lastCpu) / wall * 100;
                    }

                    _lastCpu = cpu;
                    _lastTs = now;
                    RssBytes = rss;
                    PeakRssBytes = Math.Max(PeakRssBytes, rss);
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
            {
                // The process has exited (or is exiting): keep the last values.
            }
        }

        public void MarkStart()
        {
            Sample();
            lock (_gate)
            {
                _startCpu = _lastCpu;
                _startTs = _lastTs;
                _endCpu = null;
                RssAtStart = RssBytes;
            }
        }

        public void MarkEnd()
        {
            Sample();
            lock (_gate)
            {
                _endCpu = _lastCpu;
                _endTs = _lastTs;
                RssAtEnd = RssBytes;
            }
        }
    }
}
