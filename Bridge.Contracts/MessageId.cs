namespace Bridge.Contracts;

/// <summary>Client message ids: the key a retried publish is de-duplicated by.</summary>
public static class MessageId
{
    /// <summary>Longest accepted id, in characters.</summary>
    public const int MaxLength = 64;

    /// <summary>True when <paramref name="id"/> is 1 to 64 printable ASCII characters without spaces.</summary>
    public static bool IsValid(string? id)
    {
        if (string.IsNullOrEmpty(id) || id.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in id)
        {
            if (c is <= ' ' or > '~')
            {
                return false;
            }
        }

        return true;
    }
}
