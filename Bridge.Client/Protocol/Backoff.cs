using System.Buffers.Text;
using System.Text.Json;

namespace Bridge.Client.Protocol;

internal static class Backoff
{
    /// <summary>
    /// Exponential backoff with full jitter: attempt n (0-based) waits uniformly in [0, min(max, min·2ⁿ)). The
    /// randomness spreads a crowd of clients that lost the same worker at the same moment.
    /// </summary>
    public static TimeSpan Delay(int attempt, TimeSpan min, TimeSpan max, double random)
    {
        var ceiling = Math.Min(max.TotalMilliseconds, min.TotalMilliseconds * Math.Pow(2, Math.Min(attempt, 30)));
        return TimeSpan.FromMilliseconds(Math.Floor(Math.Clamp(random, 0, 1) * ceiling));
    }

    /// <summary>The client's one backoff: attempt n of a reconnect, or of a refused publish or join, with the options' bounds and random source.</summary>
    public static TimeSpan Delay(BridgeClientOptions options, int attempt) =>
        Delay(attempt, options.ReconnectMinDelay, options.ReconnectMaxDelay, options.Random());

    /// <summary>The <see cref="TimeProvider"/> timestamp <paramref name="delay"/> from now.</summary>
    public static long TimestampAfter(TimeProvider time, TimeSpan delay) =>
        time.GetTimestamp() + (long)(delay.TotalSeconds * time.TimestampFrequency);

    /// <summary>The spread delay in a 1012 close reason (<c>service restart; reconnect_after_ms=N</c>), or null.</summary>
    public static TimeSpan? ReconnectAfter(string? reason)
    {
        const string Key = "reconnect_after_ms=";
        var at = reason?.IndexOf(Key, StringComparison.Ordinal) ?? -1;
        if (at < 0)
        {
            return null;
        }

        var start = at + Key.Length;
        var end = start;
        while (end < reason!.Length && char.IsAsciiDigit(reason[end]))
        {
            end++;
        }

        return long.TryParse(reason.AsSpan(start, end - start), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var ms)
            ? TimeSpan.FromMilliseconds(Math.Min(ms, (long)TimeSpan.FromMinutes(10).TotalMilliseconds))
            : null;
    }

    /// <summary>The <c>exp</c> of a JWT, or null when the token is not a JWT with a numeric <c>exp</c>.</summary>
    public static DateTimeOffset? JwtExpiry(string? token)
    {
        var parts = token?.Split('.');
        if (parts is not { Length: 3 })
        {
            return null;
        }

        try
        {
            var json = Base64Url.DecodeFromChars(parts[1]);
            using var document = JsonDocument.Parse(json);
            return document.RootElement.ValueKind == JsonValueKind.Object &&
                   document.RootElement.TryGetProperty("exp", out var exp) && exp.TryGetInt64(out var seconds)
                ? DateTimeOffset.FromUnixTimeSeconds(seconds)
                : null;
        }
        catch (Exception ex) when (ex is FormatException or JsonException or ArgumentOutOfRangeException)
        {
            return null;
        }
    }
}
