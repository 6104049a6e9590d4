using System.Globalization;

namespace Bridge.Worker.Nats;

/// <summary>
/// The oldest nats-server the worker runs against, decided in one place (scripts/ensure-nats-server.sh holds the
/// same number for the binary it installs; a test compares them). docs/deployment.md lists what needs which version.
/// </summary>
internal static class NatsServerRequirement
{
    // 2.14.0, the newest of:
    // - 2.11: batch direct get (`batch`, `multi_last`, `up_to_seq` on $JS.API.DIRECT.GET) for replay and activation.
    // - 2.12.2: 2.12.0-2.12.1 hold the stream's read lock across a batch direct get and take it again at its end,
    //   so a write waiting in between deadlocks the stream (nats-server #7458).
    // - 2.14.0: a stream's MaxConsumers can be updated (nats-server #7724). The worker sets it on the existing
    //   stream (2.15 allows only 1,000 consumers per stream when it is unset); older servers refuse that update.
    // Everything else the worker uses (RePublish, AllowDirect, filtered ordered consumers) is 2.10.
    public static readonly Version Minimum = new(2, 14, 0);

    /// <summary>
    /// Why the worker must not run against a server reporting <paramref name="version"/> (the <c>version</c> of its
    /// INFO, e.g. <c>2.15.1</c>), or null when it may. A pre-release (<c>2.14.0-RC.1</c>) counts as its release.
    /// </summary>
    public static string? Refusal(string? version, string url)
    {
        if (!TryParse(version, out var parsed))
        {
            return $"the NATS server at {url} reported no usable version ('{version}'); Bridge needs nats-server {Minimum} or later.";
        }

        return parsed < Minimum
            ? $"nats-server {version} at {url} is too old: Bridge needs {Minimum} or later (see docs/deployment.md, \"NATS server\"). Upgrade nats-server."
            : null;
    }

    private static bool TryParse(string? version, out Version parsed)
    {
        parsed = new Version();
        if (string.IsNullOrEmpty(version))
        {
            return false;
        }

        var end = version.IndexOfAny(['-', '+']);
        var numbers = (end < 0 ? version : version[..end]).Split('.');
        if (numbers.Length is < 2 or > 3 || !numbers.All(n => n.Length is > 0 and <= 6 && n.All(char.IsAsciiDigit)))
        {
            return false;
        }

        int Number(int i) => i < numbers.Length ? int.Parse(numbers[i], CultureInfo.InvariantCulture) : 0;
        parsed = new Version(Number(0), Number(1), Number(2));
        return true;
    }
}
