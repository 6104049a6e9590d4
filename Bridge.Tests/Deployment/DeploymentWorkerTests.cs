using System.Diagnostics.Metrics;
using System.Net;
using System.Text.RegularExpressions;
using Bridge.Tests.Infrastructure;
using Bridge.Worker.Operations;
using k8s.Models;

namespace Bridge.Tests.Deployment;

/// <summary>What the manifests assume of the worker, checked against the real worker on Kestrel and a real nats-server.</summary>
public sealed class DeploymentWorkerTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task Every_probe_path_in_the_manifests_answers_200_on_a_ready_worker()
    {
        var b = KubernetesManifestTests.Load(KubernetesManifestTests.Production);
        var worker = b.Single<V1Deployment>(KubernetesManifestTests.WorkerName).Spec.Template.Spec.Containers[0];
        var probes = new[] { worker.StartupProbe, worker.ReadinessProbe, worker.LivenessProbe }.Where(p => p is not null).Select(p => p.HttpGet.Path).Distinct().ToList();
        Assert.Equal(2, probes.Count);

        await using var host = await WorkerHost.StartAsync(nats.Server);
        using var http = new HttpClient { BaseAddress = host.HttpUrl, Timeout = TimeSpan.FromSeconds(5) };
        foreach (var path in probes)
        {
            await Eventually.TrueAsync(async () => (await http.GetAsync(path)).StatusCode == HttpStatusCode.OK, because: $"GET {path} did not answer 200");
        }

        // And a path the worker does not serve would not: the probes are not passing by accident.
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("/no-such-probe")).StatusCode);
    }

    [Fact]
    public async Task Worker_starts_with_the_production_configuration_and_requires_a_token()
    {
        var b = KubernetesManifestTests.Load(KubernetesManifestTests.Production);
        var settings = new List<(string, string)>();
        var env = b.Single<V1ConfigMap>("bridge-worker-config").Data
            .Concat(b.Single<V1Secret>("bridge-auth").StringData)
            .Where(kv => kv.Key.StartsWith("Bridge__", StringComparison.Ordinal));
        foreach (var (key, value) in env)
        {
            var setting = key switch
            {
                // This test's single nats-server on loopback stands in for the cluster, which stores 3 replicas.
                "Bridge__Nats__Url" or "Bridge__Nats__Replicas" => ((string, string)?)null,
                // auth.env is not committed; the example leaves the secret empty.
                "Bridge__Auth__HmacSecret" => (key, "a-test-only-secret-of-more-than-32-bytes-0123456789"),
                _ => (key, value),
            };
            if (setting is (string k, string v))
            {
                settings.Add((k.Replace("__", ":", StringComparison.Ordinal), v));
            }
        }

        // Every setting passes the worker's own validation at start (a bad value would stop it naming the key)...
        settings.Add(("Bridge:Auth:AllowAnonymous", "false"));
        await using var host = await WorkerHost.StartAsync(nats.Server, [.. settings]);
        using var http = new HttpClient { BaseAddress = host.HttpUrl, Timeout = TimeSpan.FromSeconds(5) };
        await Eventually.TrueAsync(async () => (await http.GetAsync("/readyz")).StatusCode == HttpStatusCode.OK);

        // ...and without a token nobody gets in.
        Assert.Equal(HttpStatusCode.Unauthorized, (await http.GetAsync("/sse?rooms=demo")).StatusCode);
    }

    [Fact]
    public async Task Grafana_dashboard_queries_only_metrics_the_worker_exports()
    {
        await using var host = await WorkerHost.StartAsync(nats.Server);
        var factory = host.Get<IMeterFactory>();

        // A series appears on /metrics once its instrument has a measurement. Record a zero on each of this
        // worker's instruments (its own meter, found through its meter factory), so every name is exported.
        using var listener = new MeterListener();
        var instruments = new List<Instrument>();
        listener.InstrumentPublished = (instrument, _) =>
        {
            if (instrument.Meter.Name == BridgeMetrics.MeterName && ReferenceEquals(instrument.Meter.Scope, factory))
            {
                instruments.Add(instrument);
            }
        };
        listener.Start();
        Assert.True(instruments.Count >= 13, $"found {instruments.Count} instruments");
        foreach (var instrument in instruments)
        {
            switch (instrument)
            {
                case Counter<long> c:
                    c.Add(0);
                    break;
                case UpDownCounter<long> u:
                    u.Add(0);
                    break;
                case Histogram<double> h:
                    h.Record(0);
                    break;
                case Counter<double> c:
                    c.Add(0);
                    break;
                case UpDownCounter<double> u:
                    u.Add(0);
                    break;
                case Histogram<long> h:
                    h.Record(0);
                    break;
            }
        }

        using var http = new HttpClient { BaseAddress = host.HttpUrl, Timeout = TimeSpan.FromSeconds(5) };
        var text = await http.GetStringAsync("/metrics");
        var families = Regex.Matches(text, @"^# TYPE (bridge_\S+) (\S+)", RegexOptions.Multiline).ToDictionary(m => m.Groups[1].Value, m => m.Groups[2].Value);
        Assert.True(families.Count >= instruments.Count, $"/metrics has {families.Count} bridge_ families for {instruments.Count} instruments:\n{text}");

        foreach (var name in KubernetesManifestTests.DashboardMetricNames())
        {
            var histogram = Regex.Match(name, "^(.*)_(bucket|sum|count)$");
            var exported = families.ContainsKey(name) ||
                           (histogram.Success && families.TryGetValue(histogram.Groups[1].Value, out var type) && type == "histogram");
            Assert.True(exported, $"the dashboard queries {name}, which the worker does not export. Exported: {string.Join(", ", families.Keys.Order())}");
        }
    }
}
