using Bridge.Contracts;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Nats;

/// <summary>Where the worker finds NATS and how the room stream is configured (section <c>Bridge:Nats</c>).</summary>
internal sealed class NatsOptions
{
    public const string Section = "Bridge:Nats";

    /// <summary>NATS server URL; several may be given separated by commas.</summary>
    public string Url { get; set; } = "nats://127.0.0.1:4222";

    /// <summary>Name of the one stream that holds every room.</summary>
    public string StreamName { get; set; } = "ROOMS";

    /// <summary>Subject prefix of rooms: room <c>a.b</c> is stored on <c>{RoomPrefix}.a.b</c>.</summary>
    public string RoomPrefix { get; set; } = NatsSubjects.DefaultRoomPrefix;

    /// <summary>Where the stream republishes each stored message; workers subscribe here per active room.</summary>
    public string LivePrefix { get; set; } = NatsSubjects.DefaultLivePrefix;

    /// <summary>How long a message is kept (the resume window).</summary>
    public TimeSpan MaxAge { get; set; } = TimeSpan.FromHours(24);

    /// <summary>Messages kept per room; older ones are dropped first.</summary>
    public long MaxMessagesPerRoom { get; set; } = 10_000;

    /// <summary>Bytes kept by the whole stream; -1 for no limit.</summary>
    public long MaxBytes { get; set; } = 1L << 30;

    /// <summary>Largest message the stream accepts, in bytes.</summary>
    public int MaxMessageBytes { get; set; } = 1 << 20;

    /// <summary><c>File</c> (survives restarts) or <c>Memory</c>.</summary>
    public StreamStorage Storage { get; set; } = StreamStorage.File;

    /// <summary>Stream replicas: 1 for a single server, 3 for a production cluster.</summary>
    public int Replicas { get; set; } = 1;

    /// <summary>Window in which a retried publish with the same message id is stored once.</summary>
    public TimeSpan DuplicateWindow { get; set; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// Consumers the room stream allows at once (its <c>max_consumers</c>). The worker holds one per history read in
    /// progress (replay, <c>room.sync</c> with <c>limit</c> &gt; 1, gap fill) for the length of one batch; backends'
    /// consumers count too. nats-server 2.15 allows only 1,000 when the stream does not say, which a reconnect
    /// storm of resuming clients passes. Past this limit a read fails (<c>unavailable</c>; the client retries).
    /// </summary>
    public int MaxConsumers { get; set; } = 100_000;

    /// <summary>How long a publish waits for the stream's acknowledgement.</summary>
    public TimeSpan PublishTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>How long start-up waits for NATS before the worker gives up.</summary>
    public TimeSpan StartupTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Live messages a room keeps while its sequence fills a gap from the stream (otherwise each is dispatched as it
    /// comes); one that finds the backlog full is read from the stream too (RoomSequence). Also NATS.Net's buffer for
    /// the worker's other subscriptions.
    /// </summary>
    public int RoomFeedCapacity { get; set; } = 8192;

    /// <summary>
    /// Store what MessagePack clients publish as its JSON rendering (<c>application/json</c>), as workers before issue
    /// 16 did, instead of the MessagePack value as sent (<c>application/msgpack</c>). For backends that read only JSON
    /// from the stream; it costs a conversion per publish and another per message for MessagePack members, and
    /// extension values (timestamps) reach them as their JSON rendering. The benchmark's "before" (msgpack-path).
    /// </summary>
    public bool StoreMessagePackAsJson { get; set; }

    // Concatenated, not interpolated: made once per publish (no pooled builder, the length counted once).
    public string RoomSubject(string room) => string.Concat(RoomPrefix, ".", room);

    public string LiveSubject(string room) => $"{LivePrefix}.{room}";

    /// <summary>
    /// The room a stream subject (<c>{RoomPrefix}.a.b</c>) or live subject (<c>{LivePrefix}.a.b</c>) is of, when it is a
    /// valid room name; null otherwise (a backend may store on any subject under the prefix, and a pattern's feed
    /// receives whatever matches).
    /// </summary>
    public string? RoomOf(string subject, bool live)
    {
        var prefix = live ? LivePrefix : RoomPrefix;
        if (subject.Length <= prefix.Length + 1 || subject[prefix.Length] != '.' || !subject.StartsWith(prefix, StringComparison.Ordinal))
        {
            return null;
        }

        var room = subject[(prefix.Length + 1)..];
        return RoomName.IsValid(room) ? room : null;
    }
}

internal enum StreamStorage
{
    File,
    Memory,
}

internal sealed class NatsOptionsValidator : IValidateOptions<NatsOptions>
{
    public ValidateOptionsResult Validate(string? name, NatsOptions options)
    {
        var failures = new List<string>();
        if (string.IsNullOrWhiteSpace(options.Url))
        {
            failures.Add("Bridge:Nats:Url is required (e.g. nats://127.0.0.1:4222).");
        }

        if (string.IsNullOrWhiteSpace(options.StreamName) || options.StreamName.AsSpan().IndexOfAny(" .*>") >= 0)
        {
            failures.Add("Bridge:Nats:StreamName must be non-empty without spaces, '.', '*' or '>'.");
        }

        if (!RoomName.IsValid(options.RoomPrefix) || !RoomName.IsValid(options.LivePrefix))
        {
            failures.Add("Bridge:Nats:RoomPrefix and LivePrefix must be plain subject tokens (letters, digits, '_', '-', '.').");
        }
        else if (options.LivePrefix == options.RoomPrefix || options.LivePrefix.StartsWith(options.RoomPrefix + ".", StringComparison.Ordinal))
        {
            failures.Add("Bridge:Nats:LivePrefix must not lie under RoomPrefix: the stream would store its own republished messages.");
        }

        if (options.MaxAge <= TimeSpan.Zero)
        {
            failures.Add("Bridge:Nats:MaxAge must be positive.");
        }

        if (options.MaxMessagesPerRoom < 1)
        {
            failures.Add("Bridge:Nats:MaxMessagesPerRoom must be at least 1.");
        }

        if (options.MaxBytes is 0 or < -1)
        {
            failures.Add("Bridge:Nats:MaxBytes must be positive or -1.");
        }

        if (options.MaxMessageBytes < 1024)
        {
            failures.Add("Bridge:Nats:MaxMessageBytes must be at least 1024.");
        }

        if (options.Replicas is < 1 or > 5)
        {
            failures.Add("Bridge:Nats:Replicas must be between 1 and 5.");
        }

        if (options.MaxConsumers < 1)
        {
            failures.Add("Bridge:Nats:MaxConsumers must be at least 1.");
        }

        if (options.DuplicateWindow <= TimeSpan.Zero || options.DuplicateWindow > options.MaxAge)
        {
            failures.Add("Bridge:Nats:DuplicateWindow must be positive and no longer than MaxAge.");
        }

        if (options.PublishTimeout <= TimeSpan.Zero || options.StartupTimeout <= TimeSpan.Zero)
        {
            failures.Add("Bridge:Nats:PublishTimeout and StartupTimeout must be positive.");
        }

        if (options.RoomFeedCapacity < 16)
        {
            failures.Add("Bridge:Nats:RoomFeedCapacity must be at least 16.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
