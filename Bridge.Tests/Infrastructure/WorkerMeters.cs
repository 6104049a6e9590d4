using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Microsoft.Extensions.DependencyInjection;

namespace Bridge.Tests.Infrastructure;

/// <summary>
/// The worker's own instruments (what <c>/metrics</c> exports), read in-process for one worker only: instruments
/// are matched by the meter's scope (the worker's meter factory), so test classes running in parallel with other
/// workers do not see each other's numbers.
/// </summary>
public sealed class WorkerMeters : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<string, double> _sums = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, double> _last = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, long> _counts = new(StringComparer.Ordinal);

    public WorkerMeters(WorkerHost worker)
    {
        var scope = worker.Services.GetRequiredService<IMeterFactory>();
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (ReferenceEquals(instrument.Meter.Scope, scope))
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => Record(instrument, value));
        _listener.SetMeasurementEventCallback<int>((instrument, value, _, _) => Record(instrument, value));
        _listener.SetMeasurementEventCallback<double>((instrument, value, _, _) => Record(instrument, value));
        _listener.Start();
    }

    private void Record(Instrument instrument, double value)
    {
        _sums.AddOrUpdate(instrument.Name, value, (_, sum) => sum + value);
        _counts.AddOrUpdate(instrument.Name, 1, (_, n) => n + 1);
        _last[instrument.Name] = value;
    }

    /// <summary>A counter's total (or a histogram's sum of recorded values) since this listener started.</summary>
    public double Total(string name) => _sums.TryGetValue(name, out var v) ? v : 0;

    /// <summary>How many measurements an instrument took (a histogram's count).</summary>
    public long Count(string name) => _counts.TryGetValue(name, out var n) ? n : 0;

    /// <summary>A gauge's current value (observed now).</summary>
    public double Gauge(string name)
    {
        _last.TryRemove(name, out _);
        _listener.RecordObservableInstruments();
        return _last.TryGetValue(name, out var v) ? v : double.NaN;
    }

    public void Dispose() => _listener.Dispose();
}
