using Bridge.Tests.Infrastructure;
using Bridge.Worker.Security;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Bridge.Tests.Unit;

/// <summary>
/// The key set's reload runs on the worker's clock (<see cref="TimeProvider"/>): with a fake clock a ten-minute
/// refresh interval passes at once, where <c>KeySetTests</c> waits for a real one-second interval.
/// </summary>
public sealed class KeyReloadTests : IDisposable
{
    private readonly Tokens _tokens = new();
    private readonly Tokens _next = new();

    public void Dispose()
    {
        _tokens.Dispose();
        _next.Dispose();
    }

    [Fact]
    public async Task A_key_file_changed_on_disk_is_loaded_when_the_refresh_interval_has_passed_on_the_workers_clock()
    {
        var dir = Directory.CreateTempSubdirectory("bridge-reload-");
        try
        {
            var path = Path.Combine(dir.FullName, "jwks.json");
            await File.WriteAllTextAsync(path, _tokens.JwksJson);
            var time = new FakeTimeProvider();
            var options = Options.Create(new AuthOptions { JwksPath = path, JwksRefreshInterval = TimeSpan.FromMinutes(10) });
            using var keys = new SigningKeys(options, time, NullLogger<SigningKeys>.Instance);
            await keys.StartAsync(CancellationToken.None);
            var before = keys.Current.Select(k => k.KeyId).ToHashSet();

            await File.WriteAllTextAsync(path, _next.JwksJson.Replace("\"rsa-1\"", "\"rsa-1-next\"", StringComparison.Ordinal));
            time.Advance(TimeSpan.FromMinutes(10));
            await Eventually.TrueAsync(() => keys.Current.Any(k => k.KeyId == "rsa-1-next"), TimeSpan.FromSeconds(10),
                "the key set was not reloaded when the fake clock passed the refresh interval");

            Assert.DoesNotContain("rsa-1", keys.Current.Select(k => k.KeyId));
            Assert.Contains("rsa-1", before);
            await keys.StopAsync(CancellationToken.None);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }
}
