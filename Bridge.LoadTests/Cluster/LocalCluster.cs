using System.Diagnostics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace Bridge.LoadTests.Cluster;

/// <summary>
/// The topology of <c>make cluster</c> (scripts/cluster.sh) on random loopback ports: three nats-server processes
/// forming a JetStream cluster, three workers with <c>Bridge:Nats:Replicas=3</c> each connected to all three
/// servers, and nginx in front with deploy/nginx/bridge.conf.template. Unlike <c>make cluster</c>, the workers run
/// as in production (JSON logs, no anonymous access: clients carry HS256 tokens from <see cref="Token"/>).
/// Every process is a <see cref="ChildProcess"/> logging to its own file. Everything lives in one temp folder,
/// removed on dispose unless <see cref="KeepFiles"/> is set.
/// </summary>
internal sealed class LocalCluster : IAsyncDisposable
{
    public const int Size = 3;

    /// <summary><c>Bridge:Shutdown:DrainTimeout</c> of the workers: short, so that a rolling restart stays short.</summary>
    public static readonly TimeSpan DrainTimeout = TimeSpan.FromSeconds(10);

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(3) };

    private readonly string _dir;
    private readonly Tokens _tokens = new(Convert.ToBase64String(RandomNumberGenerator.GetBytes(48)));
    private readonly int[] _natsMonitorPorts = new int[Size];
    private readonly int[] _workerPorts = new int[Size];
    private readonly ChildProcess[] _nats = new ChildProcess[Size];
    private readonly WorkerProcess[] _workers = new WorkerProcess[Size];
    private ChildProcess? _nginx;

    private LocalCluster(string dir) => _dir = dir;

    public string NatsUrls { get; private set; } = "";

    public Uri WebSocketUrl { get; private set; } = null!;

    public string LogDirectory => Path.Combine(_dir, "logs");

    public bool KeepFiles { get; set; }

    public static string WorkerId(int i) => $"worker-{i + 1}";

    public static string NatsName(int i) => $"nats-{i + 1}";

    public static async Task<LocalCluster> StartAsync(string configuration, CancellationToken cancellationToken)
    {
        var dir = Path.Combine(Path.GetTempPath(), "bridge-tests", "cluster-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(Path.Combine(dir, "logs"));
        var cluster = new LocalCluster(dir);
        try
        {
            await cluster.LaunchAsync(configuration, cancellationToken);
            return cluster;
        }
        catch
        {
            cluster.KeepFiles = true;
            await cluster.DisposeAsync();
            throw;
        }
    }

    private async Task LaunchAsync(string configuration, CancellationToken cancellationToken)
    {
        var natsBin = RepoPaths.NatsServer();
        var clientPorts = new int[Size];
        var routePorts = new int[Size];
        var taken = new HashSet<int>();
        int Port()
        {
            // Fixed up front (each server's routes name the others), and never the same one twice in this cluster.
            while (true)
            {
                var port = ChildProcess.FreePort();
                if (taken.Add(port))
                {
                    return port;
                }
            }
        }

        for (var i = 0; i < Size; i++)
        {
            (clientPorts[i], routePorts[i], _natsMonitorPorts[i], _workerPorts[i]) = (Port(), Port(), Port(), Port());
        }

        // 1. NATS, with the same flags as scripts/cluster.sh.
        for (var i = 0; i < Size; i++)
        {
            var routes = string.Join(',', Enumerable.Range(0, Size).Where(j => j != i).Select(j => $"nats://127.0.0.1:{routePorts[j]}"));
            _nats[i] = ChildProcess.Start(NatsName(i), natsBin,
                ["-a", "127.0.0.1", "-p", clientPorts[i].ToString(CultureInfo.InvariantCulture), "-m", _natsMonitorPorts[i].ToString(CultureInfo.InvariantCulture),
                 "-js", "-sd", Path.Combine(_dir, NatsName(i)), "--server_name", NatsName(i), "--cluster_name", "bridge",
                 "--cluster", $"nats://127.0.0.1:{routePorts[i]}", "--routes", routes],
                new ChildProcessOptions { LogFile = Log(NatsName(i)) });
        }

        NatsUrls = string.Join(',', clientPorts.Select(p => $"nats://127.0.0.1:{p}"));
        await WaitNatsClusterAsync(TimeSpan.FromSeconds(30), cancellationToken);

        // 2. Workers, one after the other: workers starting together on a fresh cluster race to create the
        // connection-count bucket, and that start step has no retry (a JetStream API timeout stops the worker).
        for (var i = 0; i < Size; i++)
        {
            _workers[i] = await WorkerProcess.StartAsync(new WorkerProcessOptions
            {
                NatsUrl = NatsUrls,
                Configuration = configuration,
                Port = _workerPorts[i],
                Id = WorkerId(i),
                Environment = new Dictionary<string, string?>
                {
                    ["ASPNETCORE_ENVIRONMENT"] = "Production",
                    ["Bridge__Nats__Replicas"] = "3",
                    ["Bridge__Auth__HmacSecret"] = _tokens.HmacSecret,
                    ["Bridge__Shutdown__DrainTimeout"] = DrainTimeout.ToString("c", CultureInfo.InvariantCulture),
                    ["Logging__LogLevel__Bridge"] = "Information",
                },
                Output = new ChildProcessOptions { LogFile = Log(WorkerId(i)) },
            }, cancellationToken);
        }

        // What the cluster is for: every message on three servers.
        var replicas = await StreamReplicasAsync("ROOMS", cancellationToken);
        if (replicas != Size)
        {
            throw new InvalidOperationException($"the ROOMS stream has {replicas} replicas, expected {Size}");
        }

        // 3. nginx in front, with the production proxy settings.
        var prefix = Path.Combine(_dir, "nginx");
        Directory.CreateDirectory(prefix);
        var listen = ChildProcess.FreePort();
        var deploy = Path.Combine(RepoPaths.Root, "deploy", "nginx");
        var workers = string.Concat(_workerPorts.Select(p => $"server 127.0.0.1:{p} max_fails=0; "));
        var conf = (await File.ReadAllTextAsync(Path.Combine(deploy, "bridge.conf.template"), cancellationToken))
            .Replace("${BRIDGE_LISTEN}", $"127.0.0.1:{listen}", StringComparison.Ordinal)
            .Replace("${BRIDGE_WORKERS}", workers, StringComparison.Ordinal);
        await File.WriteAllTextAsync(Path.Combine(prefix, "bridge.conf"), conf, cancellationToken);
        File.Copy(Path.Combine(deploy, "nginx.local.conf"), Path.Combine(prefix, "nginx.conf"));
        _nginx = await Services.StartNginxAsync(prefix, Path.Combine(prefix, "nginx.conf"), new Uri($"http://127.0.0.1:{listen}/nginx-healthz"),
            new ChildProcessOptions { LogFile = Log("nginx") }, cancellationToken);
        WebSocketUrl = new Uri($"ws://127.0.0.1:{listen}/ws");
    }

    private string Log(string name) => Path.Combine(_dir, "logs", name + ".log");

    /// <summary>An HS256 token for <paramref name="user"/> with grants on every room under <c>cluster.</c>.</summary>
    public string Token(string user) =>
        _tokens.Create(user, expiresIn: TimeSpan.FromMinutes(30), issuer: null, audience: null, subRooms: ["cluster.>"], pubRooms: ["cluster.>"]);

    public Uri WorkerUrl(int i) => new($"http://127.0.0.1:{_workerPorts[i]}");

    // ---- workers

    public Task KillWorkerAsync(int i) => _workers[i].KillAsync();

    public Task<(TimeSpan Took, bool Killed)> StopWorkerAsync(int i, TimeSpan grace) => _workers[i].StopAsync(grace);

    public void StartWorker(int i) => _workers[i].Restart();

    public Task<TimeSpan> WaitWorkerReadyAsync(int i, TimeSpan timeout, CancellationToken cancellationToken) =>
        _workers[i].WaitReadyAsync(timeout, cancellationToken);

    // ---- NATS

    public Task KillNatsAsync(int i) => _nats[i].KillAsync();

    public void StartNats(int i) => _nats[i].Restart();

    /// <summary>The stream's configured replica count, from the monitoring endpoint of a running server.</summary>
    public async Task<int> StreamReplicasAsync(string stream, CancellationToken cancellationToken)
    {
        for (var i = 0; i < Size; i++)
        {
            var jsz = await GetJsonAsync(new Uri($"http://127.0.0.1:{_natsMonitorPorts[i]}/jsz?streams=true&config=true"), cancellationToken);
            var replicas = jsz?["account_details"]?.AsArray()
                .SelectMany(a => a!["stream_detail"]?.AsArray() ?? [])
                .FirstOrDefault(s => s!["name"]?.GetValue<string>() == stream)?["config"]?["num_replicas"]?.GetValue<int>();
            if (replicas is { } n)
            {
                return n;
            }
        }

        return 0;
    }

    /// <summary>Which server leads the stream's RAFT group (the one that orders and acknowledges writes).</summary>
    public async Task<int> StreamLeaderAsync(string stream, CancellationToken cancellationToken)
    {
        for (var i = 0; i < Size; i++)
        {
            if (!_nats[i].Running)
            {
                continue;
            }

            var jsz = await GetJsonAsync(new Uri($"http://127.0.0.1:{_natsMonitorPorts[i]}/jsz?streams=true"), cancellationToken);
            var leader = jsz?["account_details"]?.AsArray()
                .SelectMany(a => a!["stream_detail"]?.AsArray() ?? [])
                .FirstOrDefault(s => s!["name"]?.GetValue<string>() == stream)?["cluster"]?["leader"]?.GetValue<string>();
            for (var j = 0; leader is not null && j < Size; j++)
            {
                if (NatsName(j) == leader)
                {
                    return j;
                }
            }
        }

        return -1;
    }

    /// <summary>
    /// Waits until every running server is healthy and a meta leader sees all the others as current. /healthz
    /// alone is not enough: a server can be healthy while the meta group has not taken in every peer, and a
    /// 3-replica stream then fails with "no suitable peers for placement".
    /// </summary>
    public async Task<TimeSpan> WaitNatsClusterAsync(TimeSpan timeout, CancellationToken cancellationToken)
    {
        var sw = Stopwatch.StartNew();
        var seen = "";
        while (true)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_nats.FirstOrDefault(n => !n.Running) is { } exited)
            {
                throw new InvalidOperationException($"{exited.Name} exited:{Environment.NewLine}{exited.LogTail()}");
            }

            if (sw.Elapsed > timeout)
            {
                throw new TimeoutException($"the NATS cluster did not form within {timeout} (last seen: {seen}):{Environment.NewLine}" +
                                           string.Join(Environment.NewLine, _nats.Select(n => $"[{n.Name}]{Environment.NewLine}{n.LogTail(15)}")));
            }

            var healthy = 0;
            var formed = false;
            var views = new List<string>();
            for (var i = 0; i < Size; i++)
            {
                var ok = await ChildProcess.IsOkAsync(new Uri($"http://127.0.0.1:{_natsMonitorPorts[i]}/healthz"), cancellationToken);
                healthy += ok ? 1 : 0;
                // Answered by the meta leader only.
                var jsz = await GetJsonAsync(new Uri($"http://127.0.0.1:{_natsMonitorPorts[i]}/jsz?leader-only=true"), cancellationToken);
                var peers = jsz?["meta_cluster"]?["replicas"]?.AsArray();
                if (peers is not null && peers.Count == Size - 1 && peers.All(p => p!["current"]?.GetValue<bool>() == true))
                {
                    formed = true;
                }

                views.Add($"{NatsName(i)} healthz {(ok ? "ok" : "failing")}" +
                          (peers is null ? "" : $", meta leader seeing {string.Join(' ', peers.Select(p => $"{p!["name"]}:{(p["current"]?.GetValue<bool>() == true ? "current" : "behind")}"))}"));
            }

            seen = string.Join("; ", views);
            if (healthy == Size && formed)
            {
                return sw.Elapsed;
            }

            await Task.Delay(100, cancellationToken);
        }
    }

    // ---- helpers

    private static async Task<JsonNode?> GetJsonAsync(Uri url, CancellationToken cancellationToken)
    {
        try
        {
            using var response = await Http.GetAsync(url, cancellationToken);
            return response.IsSuccessStatusCode ? JsonNode.Parse(await response.Content.ReadAsStringAsync(cancellationToken)) : null;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or System.Text.Json.JsonException && !cancellationToken.IsCancellationRequested)
        {
            return null;
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Workers first (they close their clients), then the balancer, then NATS.
        foreach (var worker in _workers.Where(w => w is not null))
        {
            await worker.StopAsync(TimeSpan.FromSeconds(15));
            await worker.DisposeAsync();
        }

        if (_nginx is not null)
        {
            await _nginx.StopAsync(TimeSpan.FromSeconds(5));
            await _nginx.DisposeAsync();
        }

        foreach (var nats in _nats.Where(n => n is not null))
        {
            await nats.StopAsync(TimeSpan.FromSeconds(10));
            await nats.DisposeAsync();
        }

        _tokens.Dispose();

        if (KeepFiles)
        {
            Console.Error.WriteLine($"cluster files and logs kept in {_dir}");
            return;
        }

        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
