namespace Bridge.Tests.Infrastructure;

internal static class Names
{
    /// <summary>A room name no other test uses.</summary>
    public static string Room(string prefix = "t") => $"{prefix}.{Guid.NewGuid():N}"[..Math.Min(prefix.Length + 1 + 12, 128)];
}
