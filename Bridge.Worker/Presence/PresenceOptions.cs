using Bridge.Worker.Security;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Presence;

/// <summary>Who is online per room (section <c>Bridge:Presence</c>). Off unless <see cref="Rooms"/> lists patterns.</summary>
internal sealed class PresenceOptions
{
    public const string Section = "Bridge:Presence";

    /// <summary>
    /// Room patterns (NATS wildcards, as in token grants) with presence. Each join and leave in them costs
    /// key-value writes, so it is opt-in: e.g. <c>chat.&gt;</c>, not the 100,000 device rooms.
    /// </summary>
    public string[] Rooms { get; set; } = [];

    /// <summary>NATS key-value bucket with one entry per room, user and worker.</summary>
    public string Bucket { get; set; } = "bridge_presence";

    /// <summary>
    /// Entries expire this long after their worker last renewed them (every third of it): the users of a worker
    /// that dies disappear from presence within this window, with nobody cleaning up.
    /// </summary>
    public TimeSpan Ttl { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long a user's last connection in a room may be gone before they count as offline. A connection of theirs
    /// back in the room within it (the next long-poll, a reconnect) keeps them online: no <c>offline</c>, no second
    /// <c>online</c>. Each long-poll is a join and a leave, so without this every poll would store two updates and
    /// answer the next at once. Default 30 s: a poll's wait (<c>PollTimeout</c>, 25 s) plus a client's first retries
    /// (the JS client's back-off starts at 0.5 s, a restart's <c>ReconnectSpread</c> is 5 s), so a poll answer lost in
    /// transit does not take the user offline. A worker restart does not either: the stopping worker waits
    /// <c>ReconnectSpread</c> + 1 s before storing its users' offlines, and skips those back on another worker.
    /// It is also how late a real <c>offline</c> comes.
    /// </summary>
    public TimeSpan OfflineGrace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Most users one <c>presence.query</c> answer lists.</summary>
    public int MaxMembers { get; set; } = 1000;
}

internal sealed class PresenceOptionsValidator : IValidateOptions<PresenceOptions>
{
    public ValidateOptionsResult Validate(string? name, PresenceOptions o)
    {
        var failures = new List<string>();
        foreach (var pattern in o.Rooms)
        {
            if (!RoomPattern.TryParse(pattern, out _))
            {
                failures.Add($"Bridge:Presence:Rooms entry '{pattern}' is not a room pattern (tokens, '*', a final '>').");
            }
        }

        if (string.IsNullOrWhiteSpace(o.Bucket) || !o.Bucket.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-'))
        {
            failures.Add("Bridge:Presence:Bucket must be a bucket name of [A-Za-z0-9_-].");
        }

        if (o.Ttl < TimeSpan.FromSeconds(3) || o.MaxMembers < 1)
        {
            failures.Add("Bridge:Presence:Ttl must be at least 3 s and MaxMembers at least 1.");
        }

        if (o.OfflineGrace < TimeSpan.FromSeconds(1) || o.OfflineGrace > TimeSpan.FromMinutes(10))
        {
            // Below 1 s the next long-poll would not make it back in time; above 10 min offline stops meaning much.
            failures.Add("Bridge:Presence:OfflineGrace must be between 1 s and 10 min.");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }
}
