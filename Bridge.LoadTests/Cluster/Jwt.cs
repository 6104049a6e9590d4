using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;

namespace Bridge.LoadTests.Cluster;

/// <summary>HS256 tokens in the shape the worker accepts (docs/security.md): sub, exp, sub_rooms, pub_rooms.</summary>
internal static class Jwt
{
    public static string Hs256(string secret, string subject, string[] rooms, TimeSpan lifetime)
    {
        var header = Base64Url.EncodeToString("""{"alg":"HS256","typ":"JWT"}"""u8);
        var claims = Base64Url.EncodeToString(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, object>
        {
            ["sub"] = subject,
            ["exp"] = DateTimeOffset.UtcNow.Add(lifetime).ToUnixTimeSeconds(),
            ["sub_rooms"] = rooms,
            ["pub_rooms"] = rooms,
        }));
        var signature = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encoding.ASCII.GetBytes($"{header}.{claims}"));
        return $"{header}.{claims}.{Base64Url.EncodeToString(signature)}";
    }
}
