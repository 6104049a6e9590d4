using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Bridge.Testing;
using Bridge.Worker.Connections;
using Bridge.Worker.Nats;
using Bridge.Worker.Transports.Http;
using Bridge.Worker.Transports.LongPolling;
using Bridge.Worker.Transports.Sse;
using Bridge.Worker.Transports.WebSockets;
using k8s;
using k8s.Models;

namespace Bridge.Tests.Deployment;

/// <summary>
/// The manifests in k8s/, as kustomize would build them, checked for the invariants a deployment depends on.
/// Values are read from the manifests and the worker's own constants, never repeated here. What needs the real
/// worker (the probe paths answer, the dashboard's metrics are exported) is in <see cref="DeploymentWorkerTests"/>.
/// </summary>
public sealed class KubernetesManifestTests
{
    public const string Base = "k8s/base";
    public const string Production = "k8s/overlays/production";
    public const string WorkerName = "bridge-worker";
    public const string NatsName = "nats";

    public static TheoryData<string> Builds => new() { Base, Production };

    internal static Kustomize.Build Load(string relative) => Kustomize.Load(Path.Combine(RepoPaths.Root, relative));

    [Theory]
    [MemberData(nameof(Builds))]
    public void Every_container_pins_an_image_tag_and_sets_requests_and_limits(string build)
    {
        var b = Load(build);
        var containers = b.Objects.SelectMany(o => Kustomize.Containers(o).Select(c => (Owner: o.Metadata.Name, Container: c))).ToList();
        Assert.NotEmpty(containers);
        foreach (var (owner, c) in containers)
        {
            var where = $"{owner}/{c.Name}";
            Assert.False(string.IsNullOrEmpty(c.Image), $"{where}: no image");
            var hasDigest = c.Image.Contains('@', StringComparison.Ordinal);
            var tag = c.Image.Length > Kustomize.ImageName(c.Image).Length && !hasDigest ? c.Image[(Kustomize.ImageName(c.Image).Length + 1)..] : null;
            Assert.True(hasDigest || !string.IsNullOrEmpty(tag), $"{where}: image {c.Image} has no tag (means latest)");
            Assert.NotEqual("latest", tag);

            foreach (var resource in new[] { "cpu", "memory" })
            {
                Assert.True(c.Resources?.Requests?.ContainsKey(resource) == true, $"{where}: no {resource} request");
                Assert.True(c.Resources?.Limits?.ContainsKey(resource) == true, $"{where}: no {resource} limit");
                Assert.True(c.Resources.Limits[resource].ToDecimal() >= c.Resources.Requests[resource].ToDecimal(), $"{where}: {resource} limit below request");
            }
        }
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public void Every_pod_runs_as_non_root_on_a_read_only_root_filesystem(string build)
    {
        foreach (var o in Load(build).Objects.Where(o => Kustomize.PodSpec(o) is not null))
        {
            var spec = Kustomize.PodSpec(o)!;
            foreach (var c in spec.Containers)
            {
                var where = $"{o.Metadata.Name}/{c.Name}";
                Assert.True(c.SecurityContext?.RunAsNonRoot ?? spec.SecurityContext?.RunAsNonRoot, $"{where}: runAsNonRoot is not set");
                Assert.True((c.SecurityContext?.RunAsUser ?? spec.SecurityContext?.RunAsUser) is > 0, $"{where}: no non-zero runAsUser");
                Assert.True(c.SecurityContext?.ReadOnlyRootFilesystem, $"{where}: readOnlyRootFilesystem is not set");
                Assert.False(c.SecurityContext?.AllowPrivilegeEscalation ?? true, $"{where}: allowPrivilegeEscalation is not false");
                Assert.Contains("ALL", c.SecurityContext?.Capabilities?.Drop ?? []);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public void Worker_deployment_has_three_replicas_probes_on_its_port_and_a_writable_tmp(string build)
    {
        var b = Load(build);
        var deployment = b.Single<V1Deployment>(WorkerName);
        Assert.Equal(3, deployment.Spec.Replicas);
        var spec = deployment.Spec.Template.Spec;
        var worker = Assert.Single(spec.Containers);
        var env = Env(b, worker);

        // The worker listens where ASPNETCORE_URLS (or else ASPNETCORE_HTTP_PORTS) says; that is the container port
        // the probes and Service use.
        var listening = env.TryGetValue("ASPNETCORE_URLS", out var urls) ? int.Parse(Regex.Match(urls, @":(\d+)/?$").Groups[1].Value, CultureInfo.InvariantCulture)
            : env.TryGetValue("ASPNETCORE_HTTP_PORTS", out var ports) ? int.Parse(ports, CultureInfo.InvariantCulture)
            : 0;
        Assert.True(listening > 0, "neither ASPNETCORE_URLS nor ASPNETCORE_HTTP_PORTS names the worker's one port");
        var port = Assert.Single(worker.Ports);
        Assert.Equal(listening, port.ContainerPort);

        Assert.Equal("/readyz", worker.ReadinessProbe.HttpGet.Path);
        Assert.Equal("/healthz", worker.LivenessProbe.HttpGet.Path);
        foreach (var probe in new[] { worker.ReadinessProbe, worker.LivenessProbe, worker.StartupProbe })
        {
            Assert.Equal(listening, ResolvePort(worker, probe.HttpGet.Port));
        }

        // readOnlyRootFilesystem: .NET still needs a writable /tmp (diagnostics sockets, temp files).
        var tmp = Assert.Single(worker.VolumeMounts, m => m.MountPath == "/tmp");
        Assert.NotNull(Assert.Single(spec.Volumes, v => v.Name == tmp.Name).EmptyDir);
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public void Termination_grace_period_covers_the_pre_stop_sleep_and_the_drain_timeout(string build)
    {
        var b = Load(build);
        var deployment = b.Single<V1Deployment>(WorkerName);
        var worker = Assert.Single(deployment.Spec.Template.Spec.Containers);
        var env = Env(b, worker);
        Assert.True(env.TryGetValue("Bridge__Shutdown__DrainTimeout", out var drainText), "Bridge__Shutdown__DrainTimeout is not configured");
        var drain = TimeSpan.Parse(drainText!, CultureInfo.InvariantCulture);
        var preStop = TimeSpan.FromSeconds(worker.Lifecycle?.PreStop?.Sleep?.Seconds ?? 0);
        Assert.True(preStop > TimeSpan.Zero, "no preStop sleep: the endpoint removal would race the drain");
        var grace = TimeSpan.FromSeconds(deployment.Spec.Template.Spec.TerminationGracePeriodSeconds ?? 30);
        Assert.True(grace > preStop + drain, $"terminationGracePeriodSeconds {grace.TotalSeconds} must exceed preStop {preStop.TotalSeconds} s + drain {drain.TotalSeconds} s");

        // NATS: lame duck mode (preStop) must finish before the kill.
        var nats = b.Single<V1StatefulSet>(NatsName);
        var lameDuck = Regex.Match(NatsConf(b), @"lame_duck_duration:\s*(\d+)s");
        Assert.True(lameDuck.Success, "nats.conf sets no lame_duck_duration");
        Assert.True(nats.Spec.Template.Spec.TerminationGracePeriodSeconds > int.Parse(lameDuck.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public void Services_disruption_budgets_and_autoscaler_select_the_workloads_they_name(string build)
    {
        var b = Load(build);
        var workloads = b.Objects.Where(o => Kustomize.TemplateLabels(o) is not null).ToList();

        foreach (var service in b.OfType<V1Service>())
        {
            var selected = workloads.Where(w => Matches(service.Spec.Selector, Kustomize.TemplateLabels(w))).ToList();
            var workload = Assert.Single(selected);
            var container = Kustomize.Containers(workload).First();
            foreach (var p in service.Spec.Ports)
            {
                Assert.True(ResolvePort(container, p.TargetPort ?? p.Port) > 0, $"Service {service.Metadata.Name} port {p.Name}: targetPort {p.TargetPort} is no container port of {workload.Metadata.Name}");
            }
        }

        foreach (var pdb in b.OfType<V1PodDisruptionBudget>())
        {
            var workload = Assert.Single(workloads, w => Matches(pdb.Spec.Selector.MatchLabels, Kustomize.TemplateLabels(w)));
            var replicas = workload is V1Deployment d ? d.Spec.Replicas : ((V1StatefulSet)workload).Spec.Replicas;
            Assert.True(pdb.Spec.MaxUnavailable is not null && int.Parse(pdb.Spec.MaxUnavailable.Value, CultureInfo.InvariantCulture) < replicas,
                $"PDB {pdb.Metadata.Name} must leave pods running");
        }

        var workerDeployment = b.Single<V1Deployment>(WorkerName);
        Assert.Contains(b.OfType<V1PodDisruptionBudget>(), p => Matches(p.Spec.Selector.MatchLabels, workerDeployment.Spec.Template.Metadata.Labels));
        Assert.Contains(b.OfType<V1PodDisruptionBudget>(), p => Matches(p.Spec.Selector.MatchLabels, b.Single<V1StatefulSet>(NatsName).Spec.Template.Metadata.Labels));
        Assert.True(Matches(workerDeployment.Spec.Selector.MatchLabels, workerDeployment.Spec.Template.Metadata.Labels));

        var hpa = Assert.Single(b.OfType<V2HorizontalPodAutoscaler>());
        Assert.Equal(("apps/v1", "Deployment", WorkerName), (hpa.Spec.ScaleTargetRef.ApiVersion, hpa.Spec.ScaleTargetRef.Kind, hpa.Spec.ScaleTargetRef.Name));
        Assert.True(hpa.Spec.MinReplicas >= 2 && hpa.Spec.MinReplicas <= hpa.Spec.MaxReplicas);
        Assert.True(hpa.Spec.MinReplicas <= workerDeployment.Spec.Replicas);
        // Utilization targets are relative to the requests.
        foreach (var metric in hpa.Spec.Metrics.Where(m => m.Type == "Resource"))
        {
            Assert.True(workerDeployment.Spec.Template.Spec.Containers[0].Resources.Requests.ContainsKey(metric.Resource.Name));
        }
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public void Ingress_routes_the_client_endpoints_to_the_worker_service_with_stream_friendly_settings(string build)
    {
        var b = Load(build);
        var ingress = Assert.Single(b.OfType<V1Ingress>());
        Assert.Equal("nginx", ingress.Spec.IngressClassName);
        var service = b.Single<V1Service>(WorkerName);
        var paths = ingress.Spec.Rules.SelectMany(r => r.Http.Paths).ToList();
        foreach (var path in paths)
        {
            Assert.Equal(WorkerName, path.Backend.Service.Name);
            var port = path.Backend.Service.Port;
            Assert.Contains(service.Spec.Ports, p => port.Name is not null ? p.Name == port.Name : p.Port == port.Number);
        }

        bool Routed(string path) => paths.Any(p => p.PathType == "Exact" ? p.Path == path : path.StartsWith(p.Path.TrimEnd('/') + "/", StringComparison.Ordinal) || path == p.Path);
        foreach (var endpoint in new[] { WebSocketEndpoint.Path, SseEndpoint.Path, PollEndpoint.Path, PublishEndpoint.Pattern.Replace("{room}", "chat.1", StringComparison.Ordinal) })
        {
            Assert.True(Routed(endpoint), $"the Ingress does not route {endpoint}");
        }

        foreach (var internalPath in new[] { "/metrics", "/healthz", "/readyz" })
        {
            Assert.False(Routed(internalPath), $"the Ingress exposes {internalPath}");
        }

        // The proxy must not cut a stream the worker keeps alive: its timeouts exceed every quiet period.
        var annotations = ingress.Metadata.Annotations;
        var env = Env(b, b.Single<V1Deployment>(WorkerName).Spec.Template.Spec.Containers[0]);
        var connections = new ConnectionOptions();
        TimeSpan Setting(string key, TimeSpan fallback) => env.TryGetValue("Bridge__Connections__" + key, out var v) ? TimeSpan.Parse(v, CultureInfo.InvariantCulture) : fallback;
        var quietest = new[]
        {
            Setting(nameof(ConnectionOptions.HeartbeatInterval), connections.HeartbeatInterval) + Setting(nameof(ConnectionOptions.HeartbeatTimeout), connections.HeartbeatTimeout),
            Setting(nameof(ConnectionOptions.SseHeartbeatInterval), connections.SseHeartbeatInterval),
            Setting(nameof(ConnectionOptions.PollTimeout), connections.PollTimeout),
        }.Max();
        foreach (var timeout in new[] { "proxy-read-timeout", "proxy-send-timeout" })
        {
            var seconds = int.Parse(annotations["nginx.ingress.kubernetes.io/" + timeout], CultureInfo.InvariantCulture);
            Assert.True(TimeSpan.FromSeconds(seconds) > quietest, $"{timeout} {seconds} s is not above the longest quiet period {quietest}");
        }

        Assert.Equal("off", annotations["nginx.ingress.kubernetes.io/proxy-buffering"]);
        var maxFrame = env.TryGetValue("Bridge__Connections__MaxFrameBytes", out var mf) ? long.Parse(mf, CultureInfo.InvariantCulture) : connections.MaxFrameBytes;
        Assert.True(NginxSize(annotations["nginx.ingress.kubernetes.io/proxy-body-size"]) > maxFrame,
            "proxy-body-size must be above the worker's MaxFrameBytes, so the worker answers oversized publishes itself");
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public void Nats_is_a_three_node_jetstream_cluster_with_volumes_and_the_stream_has_three_replicas(string build)
    {
        var b = Load(build);
        var nats = b.Single<V1StatefulSet>(NatsName);
        Assert.Equal(3, nats.Spec.Replicas);
        var claim = Assert.Single(nats.Spec.VolumeClaimTemplates);
        Assert.NotNull(claim.Spec.Resources.Requests["storage"]);
        var container = Assert.Single(nats.Spec.Template.Spec.Containers);
        Assert.Contains(container.VolumeMounts, m => m.Name == claim.Metadata.Name);

        var headless = b.Single<V1Service>(nats.Spec.ServiceName);
        Assert.Equal("None", headless.Spec.ClusterIP);
        Assert.True(headless.Spec.PublishNotReadyAddresses, "peers must find each other before they are ready");

        // Every replica is a route; the store lives on the claim.
        var conf = NatsConf(b);
        for (var i = 0; i < nats.Spec.Replicas; i++)
        {
            Assert.Contains($"nats://{nats.Metadata.Name}-{i}.{headless.Metadata.Name}:6222", conf, StringComparison.Ordinal);
        }

        var storeDir = Regex.Match(conf, @"store_dir:\s*(\S+)").Groups[1].Value;
        // Each node holds one copy of the stream, capped by Bridge:Nats:MaxBytes: it must fit the node's store.
        var maxFileStore = Regex.Match(conf, @"max_file_store:\s*(\d+)G\b");
        Assert.True(maxFileStore.Success, "nats.conf sets no max_file_store in G");
        var workerEnv = Env(b, b.Single<V1Deployment>(WorkerName).Spec.Template.Spec.Containers[0]);
        var streamBytes = workerEnv.TryGetValue("Bridge__Nats__MaxBytes", out var mb) ? long.Parse(mb, CultureInfo.InvariantCulture) : new NatsOptions().MaxBytes;
        Assert.True(streamBytes > 0 && streamBytes < long.Parse(maxFileStore.Groups[1].Value, CultureInfo.InvariantCulture) << 30,
            "the stream's MaxBytes must be bounded and below max_file_store");
        Assert.Equal(Assert.Single(container.VolumeMounts, m => m.Name == claim.Metadata.Name).MountPath, storeDir);

        // The worker's stream (and key-value buckets) replicate over all three, through a Service that exists.
        Assert.Equal(nats.Spec.Replicas.ToString(), workerEnv["Bridge__Nats__Replicas"]);
        foreach (var url in workerEnv["Bridge__Nats__Url"].Split(','))
        {
            var uri = new Uri(url.Trim());
            var service = b.Single<V1Service>(uri.Host);
            Assert.Contains(service.Spec.Ports, p => p.Port == uri.Port);
        }
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public async Task Nats_configuration_is_accepted_by_the_real_nats_server(string build)
    {
        var conf = Path.Combine(Path.GetTempPath(), $"bridge-nats-{Guid.NewGuid():N}.conf");
        File.WriteAllText(conf, NatsConf(Load(build)));
        try
        {
            var (exitCode, output, error) = await ChildProcess.RunAsync(RepoPaths.NatsServer(), ["-c", conf, "-t"], TimeSpan.FromSeconds(10),
                environment: new Dictionary<string, string?> { ["POD_NAME"] = "nats-0" });
            Assert.True(exitCode == 0, $"nats-server -t: {output}{error}");
        }
        finally
        {
            File.Delete(conf);
        }
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public async Task Nats_image_is_a_version_the_worker_accepts_and_the_release_line_the_tests_run(string build)
    {
        var nats = Load(build).Single<V1StatefulSet>(NatsName);
        var image = Assert.Single(nats.Spec.Template.Spec.Containers).Image;
        var tag = Regex.Match(image, @":(\d+\.\d+\.\d+)(-[a-z0-9.]+)?$");
        Assert.True(tag.Success, $"the NATS image {image} carries no version tag");
        var version = tag.Groups[1].Value;
        Assert.Null(NatsServerRequirement.Refusal(version, image));

        // The manifests run the release line (major.minor) the tests and benchmarks run.
        var (_, printed, _) = await ChildProcess.RunAsync(RepoPaths.NatsServer(), ["--version"], TimeSpan.FromSeconds(10));
        var tested = Regex.Match(printed, @"v(\d+\.\d+)\.");
        Assert.True(tested.Success, "nats-server --version printed no version");
        Assert.StartsWith(tested.Groups[1].Value + ".", version, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(Builds))]
    public void Network_policies_let_the_workers_reach_nats_and_the_nats_nodes_each_other(string build)
    {
        var b = Load(build);
        var worker = b.Single<V1Deployment>(WorkerName);
        var nats = b.Single<V1StatefulSet>(NatsName);
        var workerLabels = worker.Spec.Template.Metadata.Labels;
        var natsLabels = nats.Spec.Template.Metadata.Labels;
        var policies = b.OfType<V1NetworkPolicy>().ToList();
        var workerPolicy = Assert.Single(policies, p => Matches(p.Spec.PodSelector.MatchLabels, workerLabels));
        var natsPolicy = Assert.Single(policies, p => Matches(p.Spec.PodSelector.MatchLabels, natsLabels));
        var workerPort = worker.Spec.Template.Spec.Containers[0].Ports[0];

        Assert.True(IngressAllows(natsPolicy, workerLabels, 4222), "NATS does not admit the workers on 4222");
        Assert.True(IngressAllows(natsPolicy, natsLabels, 6222), "NATS nodes cannot reach each other's routes");
        Assert.True(EgressAllows(workerPolicy, natsLabels, 4222), "the workers may not connect to NATS");
        Assert.True(EgressAllows(natsPolicy, natsLabels, 6222), "NATS nodes may not open routes");
        Assert.Contains(workerPolicy.Spec.Ingress, rule => rule.Ports.Any(p => p.Port.Value == workerPort.Name || p.Port.Value == workerPort.ContainerPort.ToString()));
    }

    [Fact]
    public void Production_build_resolves_every_config_map_and_secret_the_pods_use()
    {
        var b = Load(Production);
        var configMaps = b.OfType<V1ConfigMap>().Select(c => c.Metadata.Name).ToHashSet();
        var secrets = b.OfType<V1Secret>().Select(s => s.Metadata.Name).ToHashSet();
        foreach (var o in b.Objects.Where(o => Kustomize.PodSpec(o) is not null))
        {
            var spec = Kustomize.PodSpec(o)!;
            foreach (var from in spec.Containers.SelectMany(c => c.EnvFrom ?? []))
            {
                Assert.True(from.ConfigMapRef is null || configMaps.Contains(from.ConfigMapRef.Name), $"{o.Metadata.Name}: no ConfigMap {from.ConfigMapRef?.Name}");
                Assert.True(from.SecretRef is null || secrets.Contains(from.SecretRef.Name), $"{o.Metadata.Name}: no Secret {from.SecretRef?.Name}");
            }

            foreach (var volume in spec.Volumes ?? [])
            {
                Assert.True(volume.ConfigMap is null || configMaps.Contains(volume.ConfigMap.Name), $"{o.Metadata.Name}: no ConfigMap {volume.ConfigMap?.Name}");
            }
        }

        // The signing keys never sit in the ConfigMap.
        var workerEnv = b.Single<V1ConfigMap>("bridge-worker-config").Data;
        Assert.DoesNotContain(workerEnv.Keys, k => k.Contains("HmacSecret", StringComparison.OrdinalIgnoreCase));
        Assert.Contains("Bridge__Auth__HmacSecret", b.Single<V1Secret>("bridge-auth").StringData.Keys);

        // The image tag is pinned by the overlay; the dashboard ships with it.
        Assert.Single(b.OfType<V1ConfigMap>(), c => c.Metadata.Labels?.ContainsKey("grafana_dashboard") == true);
    }

    [Fact]
    public void The_overlay_the_docs_and_the_Dockerfile_name_one_worker_image_tagged_with_the_package_version()
    {
        var props = File.ReadAllText(Path.Combine(RepoPaths.Root, "Directory.Build.props"));
        var version = Regex.Match(props, "<VersionPrefix>(.+)</VersionPrefix>").Groups[1].Value;
        var image = Load(Production).Single<V1Deployment>(WorkerName).Spec.Template.Spec.Containers.Single(c => c.Name == "worker").Image;
        Assert.Equal($"registry.example.com/bridge/worker:{version}", image);
        foreach (var doc in new[] { "docs/deployment.md", "Dockerfile", Production + "/kustomization.yaml" })
        {
            Assert.Contains($"docker build -t {image} .", File.ReadAllText(Path.Combine(RepoPaths.Root, doc)), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Auth_env_example_sets_only_the_keys_the_deployment_steps_fill_in()
    {
        var example = File.ReadAllLines(Path.Combine(RepoPaths.Root, Production, "auth.env.example"));
        var steps = File.ReadAllText(Path.Combine(RepoPaths.Root, "docs", "deployment.md"));
        var active = example.Where(l => l.Length > 0 && !l.StartsWith('#')).Select(l => l[..l.IndexOf('=', StringComparison.Ordinal)]).ToList();
        Assert.Equal(["Bridge__Auth__HmacSecret"], active);
        Assert.All(active, key => Assert.Contains($"s|^{key}=", steps, StringComparison.Ordinal));
    }

    [Fact]
    public void Every_file_under_k8s_is_part_of_a_kustomization()
    {
        var root = Path.Combine(RepoPaths.Root, "k8s");
        var kustomizations = Directory.GetFiles(root, "kustomization.yaml", SearchOption.AllDirectories);
        var referenced = new HashSet<string>(StringComparer.Ordinal);
        foreach (var k in kustomizations)
        {
            referenced.UnionWith(Kustomize.Load(Path.GetDirectoryName(k)!).Files);
        }

        foreach (var file in Directory.GetFiles(root, "*", SearchOption.AllDirectories))
        {
            Assert.True(referenced.Contains(file), $"{Path.GetRelativePath(RepoPaths.Root, file)} is in no kustomization: kubectl apply -k would leave it out");
        }
    }

    [Fact]
    public void Grafana_dashboard_charts_the_worker_metrics_including_auth_failures_and_rate_limits()
    {
        var names = DashboardMetricNames();
        Assert.Contains("bridge_auth_failures_total", names);
        Assert.Contains("bridge_rate_limited_total", names);
        Assert.Contains("bridge_delivery_latency_seconds_bucket", names);
        Assert.True(names.Count >= 13, $"only {names.Count} metrics charted");
    }

    /// <summary>Every metric name a query of the dashboard uses.</summary>
    internal static HashSet<string> DashboardMetricNames()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(RepoPaths.Root, "k8s/grafana/bridge-dashboard.json")));
        var names = new HashSet<string>(StringComparer.Ordinal);
        var queries = 0;
        foreach (var panel in doc.RootElement.GetProperty("panels").EnumerateArray())
        {
            if (!panel.TryGetProperty("targets", out var targets))
            {
                continue;
            }

            foreach (var target in targets.EnumerateArray())
            {
                queries++;
                var expr = target.GetProperty("expr").GetString()!;
                var found = Regex.Matches(expr, @"\b[a-z_][a-z0-9_]*(?=\s*[{\[])").Select(m => m.Value).Where(n => n.StartsWith("bridge_", StringComparison.Ordinal)).ToList();
                Assert.True(found.Count > 0, $"query without a bridge_ metric: {expr}");
                names.UnionWith(found);
            }
        }

        Assert.True(queries > 0, "the dashboard has no queries");
        return names;
    }

    internal static string NatsConf(Kustomize.Build b) => b.Single<V1ConfigMap>("nats-config").Data["nats.conf"];

    /// <summary>A container's environment as the kubelet assembles it: envFrom maps first, then env values.</summary>
    internal static Dictionary<string, string> Env(Kustomize.Build b, V1Container c)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var from in c.EnvFrom ?? [])
        {
            if (from.ConfigMapRef is not null && b.OfType<V1ConfigMap>().SingleOrDefault(m => m.Metadata.Name == from.ConfigMapRef.Name) is { } map)
            {
                foreach (var (k, v) in map.Data)
                {
                    env[k] = v;
                }
            }
        }

        foreach (var e in c.Env ?? [])
        {
            if (e.Value is not null)
            {
                env[e.Name] = e.Value;
            }
        }

        return env;
    }

    private static int ResolvePort(V1Container c, IntOrString port) =>
        int.TryParse(port.Value, out var number) ? number : c.Ports?.SingleOrDefault(p => p.Name == port.Value)?.ContainerPort ?? 0;

    private static bool Matches(IDictionary<string, string>? selector, IDictionary<string, string>? labels) =>
        selector is { Count: > 0 } && labels is not null && selector.All(s => labels.TryGetValue(s.Key, out var v) && v == s.Value);

    private static bool PortAllowed(IList<V1NetworkPolicyPort>? ports, int port) =>
        ports is null || ports.Any(p => p.Port is null || p.Port.Value == port.ToString(CultureInfo.InvariantCulture));

    private static bool IngressAllows(V1NetworkPolicy policy, IDictionary<string, string> fromLabels, int port) =>
        policy.Spec.Ingress?.Any(rule => PortAllowed(rule.Ports, port) &&
            (rule.FromProperty is null || rule.FromProperty.Any(peer => peer.NamespaceSelector is null && peer.PodSelector is not null && Matches(peer.PodSelector.MatchLabels, fromLabels)))) == true;

    private static bool EgressAllows(V1NetworkPolicy policy, IDictionary<string, string> toLabels, int port) =>
        policy.Spec.Egress?.Any(rule => PortAllowed(rule.Ports, port) &&
            (rule.To is null || rule.To.Any(peer => peer.NamespaceSelector is null && peer.PodSelector is not null && Matches(peer.PodSelector.MatchLabels, toLabels)))) == true;

    private static long NginxSize(string size)
    {
        var m = Regex.Match(size, @"^(\d+)([kKmMgG]?)$");
        Assert.True(m.Success, $"'{size}' is not an nginx size");
        var n = long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
        return m.Groups[2].Value.ToLowerInvariant() switch { "k" => n << 10, "m" => n << 20, "g" => n << 30, _ => n };
    }
}
