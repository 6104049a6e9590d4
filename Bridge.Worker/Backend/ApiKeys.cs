using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Backend;

/// <summary>
/// The configured API keys, held as SHA-256 hashes. A presented key is hashed and compared with every configured
/// hash in constant time (<see cref="CryptographicOperations.FixedTimeEquals"/>, no early exit), so neither the
/// comparison nor which key matched shows in the timing. Keys are random and at least
/// <see cref="ApiOptions.MinKeyLength"/> characters, so an unsalted fast hash is enough: there is no dictionary to
/// try (a password would need a slow, salted hash).
/// </summary>
internal sealed class ApiKeys(IOptions<ApiOptions> options)
{
    private readonly (string Name, byte[] Hash)[] _keys = [.. options.Value.Keys.Select(k => (k.Name, Convert.FromHexString(k.Sha256)))];

    public bool Any => _keys.Length > 0;

    /// <summary>The name of the key <paramref name="presented"/> is, or null.</summary>
    public string? Match(string presented)
    {
        if (presented.Length is < ApiOptions.MinKeyLength or > ApiOptions.MaxKeyLength)
        {
            return null;
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(Encoding.UTF8.GetBytes(presented), hash);
        string? match = null;
        foreach (var (name, expected) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, expected))
            {
                match = name;
            }
        }

        return match;
    }

    /// <summary>The hex SHA-256 of a key: what goes in <c>Bridge:Api:Keys:N:Sha256</c>.</summary>
    public static string HashOf(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
