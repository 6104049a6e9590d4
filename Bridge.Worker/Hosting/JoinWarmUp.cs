using System.Buffers;
using System.Buffers.Text;
using System.Net.WebSockets;
using System.Text;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Limits;
using Bridge.Worker.Presence;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Bridge.Worker.Transports.WebSockets;
using MessagePack;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Hosting;

/// <summary>
/// Runs the join path before the worker reports ready (section <c>Bridge:WarmUp</c>), so the first burst of joins
/// after a deploy does not pay for compiling it. The worker's own and NATS.Net's methods are compiled optimised on
/// their first call (<c>TieredCompilationQuickJit</c> is off in Bridge.Worker.csproj): with the runtime's default
/// (tier 0 first, optimised after thirty calls counted once compiling has paused, then again with PGO) the rounds end
/// long before anything is promoted (docs/benchmarks.md, "The warm join path, profiled").
/// </summary>
internal sealed class WarmUpOptions
{
    public const string Section = "Bridge:WarmUp";

    /// <summary>On by default; off, the worker is ready as soon as NATS and the stream are.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Rooms joined and left per round, by internal connections of at most 50 rooms each.</summary>
    public int Rooms { get; set; } = 200;

    /// <summary>Fewest rounds (rounds alternate JSON and MessagePack frames), unless <see cref="Timeout"/> passes first.</summary>
    public int MinRounds { get; set; } = 2;

    /// <summary>
    /// Most rounds. Fewer run once rounds over 500 ms in a row, after <see cref="MinRounds"/>, compiled no new method
    /// (the join path is compiled, optimised versions included) or <see cref="Timeout"/> has passed.
    /// </summary>
    public int MaxRounds { get; set; } = 40;

    /// <summary>The longest the warm-up may hold readiness back; then the worker is ready, warmed or not.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(10);
}

internal sealed class WarmUpOptionsValidator : IValidateOptions<WarmUpOptions>
{
    public ValidateOptionsResult Validate(string? name, WarmUpOptions o) =>
        o.Rooms is < 1 or > 10_000 || o.MinRounds < 1 || o.MaxRounds < o.MinRounds || o.MaxRounds > 1_000 ||
        o.Timeout < TimeSpan.FromSeconds(1) || o.Timeout > TimeSpan.FromMinutes(5)
            ? ValidateOptionsResult.Fail("Bridge:WarmUp:Rooms must be 1-10000, MinRounds at least 1, MaxRounds between MinRounds and 1000, Timeout between 1 s and 5 min.")
            : ValidateOptionsResult.Success;
}

/// <summary>
/// The join path's warm-up: rounds in which internal connections (a session like a client's, pumped by the WebSocket
/// transport's own loops over an in-memory WebSocket pair: no socket, port or token) send <c>room.join</c> frames for
/// the rooms <c>bridge-warmup.{id}.{n}</c> (every other connection all of them in one frame, the batch form), wait for every
/// <c>room.joined</c>, send <c>room.leave</c> for each and wait for every <c>room.left</c>, then close; rounds alternate
/// JSON and MessagePack frames. It runs the whole path a
/// client's join runs from the WebSocket frame on: frame reads, the rate limit, decoding, the grant check, the room
/// registry, the room's core subscription, the seam's batch direct get, <c>room.joined</c>'s encoding and its write.
/// Each round also checks tokens that must fail (random signatures): the token check's parsing, key lookup and
/// signature check run, and refuse them. Kestrel's own connection and upgrade path, and the reading of an accepted
/// token's claims, are not run: no token the worker accepts is made, and no request is let past admission. It publishes nothing and leaves no subscription or consumer behind (every room is
/// left). <see cref="HealthEndpoints"/> reports not ready until it has finished, failed or timed out. Rooms with
/// presence are not warmed (presence writes key-value entries): the warm-up is skipped when presence covers its rooms.
/// </summary>
internal sealed partial class JoinWarmUp(
    WebSocketEndpoint webSockets,
    PresenceTracker presence,
    RoomReader reader,
    TokenValidator tokens,
    IOptions<WarmUpOptions> options,
    IOptions<ConnectionOptions> connections,
    IOptions<LimitOptions> limits,
    IHostApplicationLifetime lifetime,
    TimeProvider time,
    ILogger<JoinWarmUp> logger) : BackgroundService
{
    /// <summary>The first token of the warm-up's rooms.</summary>
    public const string RoomPrefix = "bridge-warmup";

    private const int RoomsPerConnection = 50;

    // Refused token checks per round: past the runtime's 30 calls for optimising in the rounds the warm-up runs.
    private const int TokenChecksPerRound = 16;
    private static readonly TimeSpan QuietTime = TimeSpan.FromMilliseconds(500);
    private static readonly TimeSpan TieringPause = TimeSpan.FromMilliseconds(150);

    private readonly TaskCompletionSource _completed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _joins;

    /// <summary>True once the warm-up has ended (or was off): readiness no longer waits for it.</summary>
    public bool Completed => _completed.Task.IsCompleted;

    /// <summary>Joins (each answered <c>room.joined</c>, then left) of the rounds finished so far.</summary>
    public int Joins => Volatile.Read(ref _joins);

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        // Off the host's start: the server listens (and answers not ready) meanwhile.
        await Task.Yield();
        try
        {
            var o = options.Value;
            if (!o.Enabled)
            {
                return;
            }

            // Random per start: workers starting together do not share warm-up rooms.
            var prefix = $"{RoomPrefix}.{Guid.NewGuid().ToString("N")[..8]}";
            if (presence.IsEnabled(prefix + ".0"))
            {
                LogSkippedForPresence(logger, RoomPrefix);
                return;
            }

            using var deadline = new CancellationTokenSource(o.Timeout, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken, deadline.Token, lifetime.ApplicationStopping);
            await RunAsync(o, prefix, linked.Token, deadline.Token);
        }
        finally
        {
            _completed.TrySetResult();
        }
    }

    private async Task RunAsync(WarmUpOptions o, string prefix, CancellationToken cancellationToken, CancellationToken deadline)
    {
        var started = time.GetTimestamp();
        // Within the connection's rooms and its frame burst (a join and a leave per room), as a client's would have to be.
        var perConnection = Math.Min(Math.Min(RoomsPerConnection, connections.Value.MaxRoomsPerConnection), Math.Max(1, limits.Value.MessageBurst / 2));
        var rounds = 0;
        var methodsBefore = System.Runtime.JitInfo.GetCompiledMethodCount();
        try
        {
            var methods = methodsBefore;
            var quietSince = time.GetTimestamp();
            while (rounds < o.MaxRounds)
            {
                var roundStarted = time.GetTimestamp();
                IFrameCodec codec = rounds % 2 == 0 ? JsonFrameCodec.Instance : MessagePackFrameCodec.Instance;
                var sessions = Enumerable.Range(0, (o.Rooms + perConnection - 1) / perConnection)
                    .Select(s => Enumerable.Range(s * perConnection, Math.Min(perConnection, o.Rooms - (s * perConnection))).Select(n => $"{prefix}.{n}").ToArray());
                await Task.WhenAll(sessions.Select((rooms, i) => RoundAsync(codec, rooms, batch: i % 2 == 1, cancellationToken)));
                await CheckRefusedTokensAsync();
                rounds++;
                Interlocked.Add(ref _joins, o.Rooms);
                var now = System.Runtime.JitInfo.GetCompiledMethodCount();
                var roundTime = time.GetElapsedTime(roundStarted);
                LogRound(logger, rounds, roundTime.TotalMilliseconds, now - methods);
                // The runtime starts counting calls for optimising only once nothing new was compiled for 100 ms, then
                // compiles in the background: quiet rounds shorter than that come before it. Rounds without a new
                // method for QuietTime, after both formats ran, mean the path is compiled, optimised versions included.
                if (now != methods)
                {
                    quietSince = time.GetTimestamp();
                }

                methods = now;
                if (time.GetElapsedTime(quietSince) >= QuietTime && rounds >= o.MinRounds)
                {
                    break;
                }

                var pauseStarted = time.GetTimestamp();
                // A pause longer than the runtime's tiering delay: the methods first called so far get their call
                // counters, so the next rounds' calls promote them (compiled in the background) before readiness.
                if (rounds % 4 == 2 && rounds < o.MaxRounds)
                {
                    await Task.Delay(TieringPause, time, cancellationToken);
                    // The pause is not quiet rounds: the compiles it lets start are counted by the rounds after it.
                    quietSince += time.GetTimestamp() - pauseStarted;
                }
            }

            var elapsed = time.GetElapsedTime(started);
            var compiled = System.Runtime.JitInfo.GetCompiledMethodCount() - methodsBefore;
            LogWarmedUp(logger, Joins, rounds, elapsed.TotalMilliseconds, compiled);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            LogTimedOut(logger, o.Timeout.TotalSeconds, rounds);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Shutting down.
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // NATS unavailable, a join refused: the worker still becomes ready (its own checks say whether it is).
            LogFailed(logger, ex.Message);
        }
    }

    /// <summary>
    /// The token check a client's connection starts with, on tokens that must fail (<see cref="RefusedTokens"/>): the
    /// parsing, the key lookup and the signature check run and refuse them. No token is made that the worker accepts.
    /// </summary>
    private async Task CheckRefusedTokensAsync()
    {
        for (var i = 0; i < TokenChecksPerRound; i++)
        {
            var check = await tokens.ValidateAsync(RefusedTokens[i % RefusedTokens.Length]);
            if (check.Identity is not null)
            {
                throw new WarmUpRefusedException("a warm-up token was accepted; it must never be");
            }
        }
    }

    /// <summary>
    /// Well-formed JWTs (HS256, RS256, ES256; subject <see cref="RoomPrefix"/>, an <c>exp</c> an hour ahead) whose
    /// signatures are random bytes made at start: no key signed them, so every key's check refuses them.
    /// </summary>
    internal static readonly string[] RefusedTokens =
    [
        RefusedToken("HS256", 32),
        RefusedToken("RS256", 256),
        RefusedToken("ES256", 64),
    ];

    private static string RefusedToken(string algorithm, int signatureBytes)
    {
        var header = Base64Url.EncodeToString(Encoding.UTF8.GetBytes($$"""{"alg":"{{algorithm}}","typ":"JWT"}"""));
        var exp = DateTimeOffset.UtcNow.AddHours(1).ToUnixTimeSeconds();
        var payload = Base64Url.EncodeToString(Encoding.UTF8.GetBytes($$"""{"sub":"{{RoomPrefix}}","exp":{{exp}}}"""));
        return $"{header}.{payload}.{Base64Url.EncodeToString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(signatureBytes))}";
    }

    /// <summary>
    /// One internal connection joins <paramref name="rooms"/>, then leaves them, over an in-memory WebSocket pair: the
    /// worker's side is pumped by the same <see cref="WebSocketConnection"/> a client's socket is (frame reads, the rate
    /// limit, dispatch, the send loop and its batching, the close handshake), the warm-up's side is a client's socket.
    /// </summary>
    private async Task RoundAsync(IFrameCodec codec, string[] rooms, bool batch, CancellationToken cancellationToken)
    {
        var c = connections.Value;
        var session = new ClientSession(
            "warmup-" + Guid.NewGuid().ToString("N")[..8],
            new UserIdentity(RoomPrefix, null, RoomGrant.All, RoomGrant.None),
            codec,
            new OutboundQueue(c.SendQueueCapacity, c.SendQueueMaxBytes),
            reader,
            c.MaxConcurrentRequests);
        var (serverEnd, clientEnd) = InMemoryDuplex.CreatePair();
        var batching = new FrameBatchingStream(serverEnd);
        using var server = WebSocket.CreateFromStream(batching, new WebSocketCreationOptions { IsServer = true, SubProtocol = codec.Subprotocol });
        using var client = WebSocket.CreateFromStream(clientEnd, new WebSocketCreationOptions { IsServer = false, SubProtocol = codec.Subprotocol });
        using var aborted = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var pumping = webSockets.RunAsync(server, batching, session, aborted.Token);
        try
        {
            if (batch)
            {
                var joined = AwaitAnswersAsync(client, codec, MessageTypes.RoomJoined, rooms.Length, cancellationToken);
                await client.SendAsync(EncodeBatchJoin(codec.Format, rooms), codec.MessageType, endOfMessage: true, cancellationToken);
                await joined;
            }
            else
            {
                await ExchangeAsync(client, codec, MessageTypes.RoomJoin, MessageTypes.RoomJoined, rooms, cancellationToken);
            }

            await ExchangeAsync(client, codec, MessageTypes.RoomLeave, MessageTypes.RoomLeft, rooms, cancellationToken);
            // The close handshake, as a client ends its connection.
            await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "warm-up done", cancellationToken);
        }
        finally
        {
            session.RequestClose(CloseCodes.Normal, "warm-up done");
            await aborted.CancelAsync();
            client.Abort();
            await pumping;
            await session.LeaveAllRoomsAsync();
            await clientEnd.DisposeAsync();
            await serverEnd.DisposeAsync();
        }
    }

    /// <summary>Sends a <paramref name="type"/> frame for each room while reading the socket until each has its <paramref name="answer"/>.</summary>
    private static async Task ExchangeAsync(WebSocket client, IFrameCodec codec, string type, string answer, string[] rooms, CancellationToken cancellationToken)
    {
        var answers = AwaitAnswersAsync(client, codec, answer, rooms.Length, cancellationToken);
        foreach (var room in rooms)
        {
            await client.SendAsync(Encode(codec.Format, type, room), codec.MessageType, endOfMessage: true, cancellationToken);
        }

        await answers;
    }

    /// <summary>Reads frames from the worker's side of the pair, as a client would, until <paramref name="count"/> frames of <paramref name="type"/> came.</summary>
    private static async Task AwaitAnswersAsync(WebSocket client, IFrameCodec codec, string type, int count, CancellationToken cancellationToken)
    {
        var buffer = new byte[16 * 1024];
        while (count > 0)
        {
            var length = 0;
            ValueWebSocketReceiveResult result;
            do
            {
                if (length == buffer.Length)
                {
                    Array.Resize(ref buffer, buffer.Length * 2);
                }

                result = await client.ReceiveAsync(buffer.AsMemory(length), cancellationToken);
                length += result.Count;
            }
            while (!result.EndOfMessage && result.MessageType != WebSocketMessageType.Close);

            if (result.MessageType == WebSocketMessageType.Close)
            {
                throw new WarmUpRefusedException($"the worker closed a warm-up connection: {client.CloseStatus} {client.CloseStatusDescription}");
            }

            var frame = codec.Decode(buffer.AsSpan(0, length), out var error)
                ?? throw new WarmUpRefusedException($"the worker sent a frame its own codec cannot read: {error.Message}");
            if (frame.Type == MessageTypes.Error)
            {
                var text = codec.Format == WireFormat.Json ? Encoding.UTF8.GetString(buffer, 0, length) : "(MessagePack error frame)";
                throw new WarmUpRefusedException($"a warm-up frame was answered with an error: {text}");
            }

            if (frame.Type == type)
            {
                count--;
            }
        }
    }

    private static byte[] Encode(WireFormat format, string type, string room)
    {
        if (format == WireFormat.Json)
        {
            return Encoding.UTF8.GetBytes($$"""{"type":"{{type}}","room":"{{room}}"}""");
        }

        var buffer = new ArrayBufferWriter<byte>(64);
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(2);
        writer.Write(EnvelopeKeys.Type);
        writer.Write(type);
        writer.Write(EnvelopeKeys.Room);
        writer.Write(room);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>A batch <c>room.join</c>: <c>{type, payload: {rooms: [{room}, ...]}}</c>.</summary>
    private static byte[] EncodeBatchJoin(WireFormat format, string[] rooms)
    {
        if (format == WireFormat.Json)
        {
            var entries = string.Join(',', rooms.Select(room => $$"""{"room":"{{room}}"}"""));
            return Encoding.UTF8.GetBytes($$$"""{"type":"{{{MessageTypes.RoomJoin}}}","payload":{"rooms":[{{{entries}}}]}}""");
        }

        var buffer = new ArrayBufferWriter<byte>(64 * rooms.Length);
        var writer = new MessagePackWriter(buffer);
        writer.WriteMapHeader(2);
        writer.Write(EnvelopeKeys.Type);
        writer.Write(MessageTypes.RoomJoin);
        writer.Write(EnvelopeKeys.Payload);
        writer.WriteMapHeader(1);
        writer.Write("rooms");
        writer.WriteArrayHeader(rooms.Length);
        foreach (var room in rooms)
        {
            writer.WriteMapHeader(1);
            writer.Write(EnvelopeKeys.Room);
            writer.Write(room);
        }

        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private sealed class WarmUpRefusedException(string message) : Exception(message);

    [LoggerMessage(EventId = 4110, Level = LogLevel.Information,
        Message = "Join path warmed up: {Joins} joins and leaves in {Rounds} rounds, {ElapsedMs:F0} ms, {Methods} methods compiled")]
    private static partial void LogWarmedUp(ILogger logger, int joins, int rounds, double elapsedMs, long methods);

    [LoggerMessage(EventId = 4114, Level = LogLevel.Debug, Message = "Join path warm-up round {Round}: {ElapsedMs:F0} ms, {Methods} methods compiled")]
    private static partial void LogRound(ILogger logger, int round, double elapsedMs, long methods);

    [LoggerMessage(EventId = 4111, Level = LogLevel.Warning,
        Message = "Join path warm-up stopped after {TimeoutSeconds} s ({Rounds} rounds); the worker is ready without it (Bridge:WarmUp:Timeout)")]
    private static partial void LogTimedOut(ILogger logger, double timeoutSeconds, int rounds);

    [LoggerMessage(EventId = 4112, Level = LogLevel.Warning, Message = "Join path warm-up failed, the worker is ready without it: {Reason}")]
    private static partial void LogFailed(ILogger logger, string reason);

    [LoggerMessage(EventId = 4113, Level = LogLevel.Information,
        Message = "Join path warm-up skipped: Bridge:Presence:Rooms covers its rooms ({Prefix}.*), and warming them would write presence")]
    private static partial void LogSkippedForPresence(ILogger logger, string prefix);
}
