using System.Text;
using Bridge.Worker.Security;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Bridge.Cli.Commands;

/// <summary>
/// <c>bridgectl token</c>: a test token signed with the configured HS256 secret (<c>Bridge:Auth:HmacSecret</c>), with
/// the claims the worker reads (docs/security.md): <c>sub</c>, <c>exp</c>, the join and publish grants under the
/// configured claim names, and <c>iss</c>/<c>aud</c> when the worker requires them. Prints only the token.
/// </summary>
internal static class TokenCommand
{
    public const string Usage = """
          token --sub USER [--rooms P1,P2] [--sub-rooms P..] [--pub-rooms P..] [--expires 1h] [--not-before 0s]
                a test token signed with the configured HS256 secret; patterns as in docs/security.md ('chat.>', 'demo');
                --rooms sets both grants; printed alone on stdout: TOKEN=$(bridgectl token --sub alice --rooms demo)
        """;

    public static async Task<int> RunAsync(CliArgs args, CancellationToken cancellationToken)
    {
        var subject = args.String("sub") ?? throw new UsageException("token needs --sub USER");
        var rooms = Patterns(args, "rooms");
        var subscribe = args.Has("sub-rooms") ? Patterns(args, "sub-rooms") : rooms;
        var publish = args.Has("pub-rooms") ? Patterns(args, "pub-rooms") : rooms;
        var lifetime = args.Duration("expires", TimeSpan.FromHours(1));
        var notBefore = args.Has("not-before") ? args.Duration("not-before", TimeSpan.Zero) : TimeSpan.Zero;
        await using var config = WorkerConfig.Load(args);
        args.RejectUnknown();

        if (subject.Length is 0 or > TokenValidator.MaxSubjectLength || subject.Any(char.IsControl))
        {
            throw new UsageException($"--sub must be 1-{TokenValidator.MaxSubjectLength} characters without control characters");
        }

        var auth = config.Auth;
        if (string.IsNullOrEmpty(auth.HmacSecret))
        {
            throw new CliFailure(
                "no HS256 secret is configured (Bridge:Auth:HmacSecret): tokens for RS256/ES256 key sets come from your identity provider. " +
                "Give the worker's configuration: --content-root DIR, Bridge__Auth__HmacSecret=… or --Bridge:Auth:HmacSecret=….");
        }

        var now = DateTime.UtcNow;
        var claims = new Dictionary<string, object>
        {
            ["sub"] = subject,
            [auth.SubscribeClaim] = subscribe,
            [auth.PublishClaim] = publish,
        };
        var token = new JsonWebTokenHandler().CreateToken(new SecurityTokenDescriptor
        {
            Claims = claims,
            IssuedAt = now,
            NotBefore = now + notBefore,
            Expires = now + notBefore + lifetime,
            Issuer = string.IsNullOrEmpty(auth.Issuer) ? null : auth.Issuer,
            Audience = string.IsNullOrEmpty(auth.Audience) ? null : auth.Audience,
            SigningCredentials = new SigningCredentials(new SymmetricSecurityKey(Encoding.UTF8.GetBytes(auth.HmacSecret)) { KeyId = "hmac" }, SecurityAlgorithms.HmacSha256),
        });
        Console.Out.WriteLine(token);
        return 0;
    }

    /// <summary>Room patterns, comma- or space-separated, each checked with the worker's own pattern rules.</summary>
    private static string[] Patterns(CliArgs args, string name)
    {
        var patterns = args.All(name).SelectMany(v => v.Split([',', ' '], StringSplitOptions.RemoveEmptyEntries)).Distinct(StringComparer.Ordinal).ToArray();
        foreach (var p in patterns)
        {
            if (!RoomPattern.TryParse(p, out _))
            {
                throw new UsageException($"--{name}: '{p}' is not a room pattern (dot-separated [A-Za-z0-9_-] tokens, '*' and a final '>')");
            }
        }

        return patterns;
    }
}
