using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Http.Headers;
using Bridge.LoadTests.Harness;
using Bridge.LoadTests.Infrastructure;

namespace Bridge.LoadTests.Peers;

/// <summary>
/// A deployment the user names with <c>--target</c> (a staging Bridge behind its ingress, or any worker): never
/// started or stopped here, reached only at the address given. Subscribers are WebSocket clients (JSON or
/// MessagePack) or SSE streams; the publisher is a backend publishing over HTTP (<c>POST /api/rooms/{room}/messages</c>,
/// since a deployment's NATS is not reachable from outside): one request in flight per room, so each room's
/// messages are stored in publish order, and up to 64 rooms at once. Each run uses rooms of its own,
/// <c>{prefix}.{run}.r{n}</c>, so runs never see each other's messages.
/// </summary>
internal sealed class RemoteTarget(TargetOptions target, BridgeTransport transport) : IFanoutTarget
{
    private int _next;

    public string Name => $"{target.Http.Authority} ({transport switch { BridgeTransport.MessagePack => "msgpack", BridgeTransport.Sse => "SSE", _ => "JSON" }})";

    public string GatewayProcess => "worker";

    public IdleEndpoint IdleEndpoint => throw new NotSupportedException("the idle scenario measures a worker's memory: it runs on its own servers only");

    public Task StartAsync(ScenarioContext context)
    {
        context.Report.Add("target", $"{target.Http} (rooms {target.Room(0)}…, tokens from {target.Tokens.Source})");
        return Task.CompletedTask;
    }

    public async Task<IAsyncDisposable> SubscribeAsync(IReadOnlyList<int> rooms, ScenarioStats stats, CancellationToken cancellationToken)
    {
        var n = Interlocked.Increment(ref _next) - 1;
        var token = await target.Tokens.ForConnectionAsync(n, cancellationToken);
        return await BridgeTarget.SubscribeAsync(target.Http, target.WebSocket, transport, [.. rooms.Select(target.Room)], token, stats, cancellationToken);
    }

    public async Task<IRoomPublisher> CreatePublisherAsync(ScenarioStats stats, CancellationToken cancellationToken) =>
        new HttpPublisher(target, await target.Tokens.ForPublisherAsync(cancellationToken), stats);

    public ValueTask DisposeAsync() => ValueTask.CompletedTask;

    private sealed class HttpPublisher(TargetOptions target, string token, ScenarioStats stats) : IRoomPublisher
    {
        private const int InFlight = 64;
        private static readonly byte[] Head = "{\"type\":\"load.tick\",\"payload\":"u8.ToArray();
        private readonly HttpClient _http = new(new SocketsHttpHandler { MaxConnectionsPerServer = InFlight, PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30) })
        {
            Timeout = TimeSpan.FromSeconds(30),
            DefaultRequestHeaders = { Authorization = new AuthenticationHeaderValue("Bearer", token) },
        };

        private readonly SemaphoreSlim _window = new(InFlight, InFlight);

        // The last publish of each room: the next one starts after it. Concurrent requests could be stored in any
        // order, and the receivers' loss and duplicate check counts on each room's publish order. Touched only by
        // PublishAsync, which the harness calls from one loop.
        private readonly Dictionary<int, Task> _tails = [];

        public async ValueTask PublishAsync(int room, byte[] body, CancellationToken cancellationToken)
        {
            await _window.WaitAsync(cancellationToken);
            var json = new byte[Head.Length + body.Length + 1];
            Head.CopyTo(json, 0);
            body.CopyTo(json, Head.Length);
            json[^1] = (byte)'}';
            _tails[room] = SendAsync(_tails.GetValueOrDefault(room, Task.CompletedTask), new Uri(target.Http, $"api/rooms/{target.Room(room)}/messages"), json, cancellationToken);
        }

        private async Task SendAsync(Task previous, Uri url, byte[] json, CancellationToken cancellationToken)
        {
            try
            {
                await previous; // never faults: each send catches its own errors

                using var content = new ByteArrayContent(json) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } };
                using var response = await _http.PostAsync(url, content, cancellationToken);
                if (!response.IsSuccessStatusCode)
                {
                    stats.Error("publish: " + ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture));
                }
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                stats.Error("publish: " + ScenarioContext.Classify(ex));
            }
            catch (OperationCanceledException)
            {
            }
            finally
            {
                _window.Release();
            }
        }

        public async Task FlushAsync(CancellationToken cancellationToken)
        {
            for (var i = 0; i < InFlight; i++)
            {
                await _window.WaitAsync(cancellationToken);
            }

            _window.Release(InFlight);
        }

        public ValueTask DisposeAsync()
        {
            _http.Dispose();
            _window.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}

/// <summary>
/// <c>--target</c> and what goes with it: the deployment's address, the room prefix its tokens grant, and where
/// tokens come from. A remote target is only ever the user's explicit choice; the project's own runs (smoke,
/// bench, make test) never pass it and stay on loopback.
/// </summary>
internal sealed class TargetOptions
{
    public const string Usage = """
        a deployment instead of servers of its own (fanout, fanout-burst, sse-fanout):
          --target https://bridge.example.com | http://127.0.0.1:8080 | wss://…   the worker's or the ingress's address
          tokens: --signing-key SECRET (HS256; or $BRIDGE_LOAD_SIGNING_KEY) [--token-issuer I] [--token-audience A]
                  or --token-command "CMD" (run by /bin/sh once per user, {sub} replaced by the user; prints a token)
          --users N (connections share N users; default one per connection, or 1 for a command without {sub})
          --room-prefix bench (the tokens grant PREFIX.>; each run uses PREFIX.<run>.r<n>)
        load and checks: --ramp N (open N connections/s instead of all at once) --warmup S --drain S
          --threshold "latency_p99_ms<=200" (repeatable; metric<=x, metric>=x or metric=0; keys: docs/benchmarks.md)
        reports: --report-dir DIR (default results/): NAME.md, .html, .csv and .junit.xml; exit code 1 when a check fails
        """;

    private TargetOptions(Uri http, TokenSource tokens, string prefix)
    {
        Http = http;
        Tokens = tokens;
        Prefix = prefix;
    }

    /// <summary>The deployment's HTTP base address (<c>/sse</c>, <c>/api/rooms</c>).</summary>
    public Uri Http { get; }

    /// <summary>Its WebSocket endpoint, <c>ws(s)://host/ws</c>.</summary>
    public Uri WebSocket => new UriBuilder(Http) { Scheme = Http.Scheme == "https" ? "wss" : "ws", Path = Http.AbsolutePath.TrimEnd('/') + "/ws" }.Uri;

    public TokenSource Tokens { get; }

    public string Prefix { get; }

    /// <summary>Six hex characters, new for every run.</summary>
    public string Run { get; } = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(3)).ToLowerInvariant();

    public string Room(int n) => $"{Prefix}.{Run}.r{n.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The options of <paramref name="a"/>, or null when it names no target.</summary>
    public static TargetOptions? From(Args a, int connections)
    {
        if (a.String("--target") is not { } text)
        {
            return null;
        }

        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https" or "ws" or "wss"))
        {
            throw new ArgumentException($"--target '{text}' must be an http(s):// or ws(s):// address");
        }

        var http = new UriBuilder(uri) { Scheme = uri.Scheme is "https" or "wss" ? "https" : "http", Port = uri.IsDefaultPort ? -1 : uri.Port };
        var path = http.Path.TrimEnd('/');
        http.Path = (path.EndsWith("/ws", StringComparison.Ordinal) ? path[..^3] : path) + "/";
        var prefix = a.String("--room-prefix") ?? "bench";
        if (!Contracts.RoomName.IsValid(prefix))
        {
            throw new ArgumentException($"--room-prefix '{prefix}' is not a room name");
        }

        var secret = a.String("--signing-key") ?? Environment.GetEnvironmentVariable("BRIDGE_LOAD_SIGNING_KEY");
        var command = a.String("--token-command");
        if ((secret is null) == (command is null))
        {
            throw new ArgumentException("--target needs tokens: --signing-key SECRET (or $BRIDGE_LOAD_SIGNING_KEY), or --token-command \"CMD\" (one of them)");
        }

        var users = a.Int("--users", command is not null && !command.Contains("{sub}", StringComparison.Ordinal) ? 1 : connections);
        var tokens = secret is not null
            ? TokenSource.Signed(secret, [$"{prefix}.>"], a.String("--token-issuer"), a.String("--token-audience"), users)
            : TokenSource.FromCommand(command!, users);
        return new TargetOptions(http.Uri, tokens, prefix);
    }
}

/// <summary>
/// Tokens for a remote target: minted with the deployment's HS256 secret, or printed by a command the user gives
/// (their identity provider's CLI, <c>bridgectl token</c>, a script). Connections share <c>users</c> users
/// (<c>load-&lt;n&gt;</c>; the publisher is <c>load-publisher</c>) so a deployment's per-user connection limit
/// (default 5) can be respected; each user's token is made once.
/// </summary>
internal sealed class TokenSource
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromSeconds(30);
    private readonly Func<string, CancellationToken, Task<string>> _make;
    private readonly ConcurrentDictionary<string, Lazy<Task<string>>> _made = new(StringComparer.Ordinal);
    private readonly int _users;

    private TokenSource(string source, int users, Func<string, CancellationToken, Task<string>> make)
    {
        Source = source;
        _users = Math.Max(1, users);
        _make = make;
    }

    public string Source { get; }

    public static TokenSource Signed(string secret, string[] rooms, string? issuer, string? audience, int users) =>
        new("the signing key", users, (sub, _) => Task.FromResult(BenchTokens.Mint(sub, TimeSpan.FromHours(2), secret, rooms, issuer, audience)));

    public static TokenSource FromCommand(string command, int users) =>
        new($"--token-command", users, (sub, ct) => RunAsync(command.Replace("{sub}", sub, StringComparison.Ordinal), ct));

    public Task<string> ForConnectionAsync(int connection, CancellationToken cancellationToken) =>
        GetAsync("load-" + (connection % _users).ToString(CultureInfo.InvariantCulture), cancellationToken);

    public Task<string> ForPublisherAsync(CancellationToken cancellationToken) => GetAsync("load-publisher", cancellationToken);

    private Task<string> GetAsync(string sub, CancellationToken cancellationToken) =>
        _made.GetOrAdd(sub, s => new Lazy<Task<string>>(() => _make(s, cancellationToken))).Value;

    private static async Task<string> RunAsync(string command, CancellationToken cancellationToken)
    {
        var psi = new ProcessStartInfo("/bin/sh") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add("-c");
        psi.ArgumentList.Add(command);
        using var process = Process.Start(psi)!;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(CommandTimeout);
        var stdout = process.StandardOutput.ReadToEndAsync(timeout.Token);
        var stderr = process.StandardError.ReadToEndAsync(timeout.Token);
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new InvalidOperationException($"--token-command did not finish within {CommandTimeout.TotalSeconds:N0} s");
        }

        var token = (await stdout).Trim();
        if (process.ExitCode != 0 || token.Length == 0 || token.Contains('\n', StringComparison.Ordinal))
        {
            throw new InvalidOperationException($"--token-command exited with {process.ExitCode} and must print one token: {(await stderr).Trim()}");
        }

        return token;
    }
}
