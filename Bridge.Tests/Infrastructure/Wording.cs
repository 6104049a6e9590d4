namespace Bridge.Tests.Infrastructure;

/// <summary>Client-visible error messages are in Bridge's words (docs/protocol.md §4, <c>error</c>), never .NET's.</summary>
internal static class Wording
{
    /// <summary>Words of .NET's exception texts (as they write them) that must not reach a client's error message.</summary>
    public static readonly string[] Dotnet =
        ["token", "Expected", "reader options", "Change the", "isFinalBlock", "deserializ", "Specified argument", "valid values", "property", "Attempted", "stream"];

    /// <summary>Fails when <paramref name="message"/> has one of the <see cref="Dotnet"/> words.</summary>
    public static void AssertOurs(string message)
    {
        foreach (var word in Dotnet)
        {
            Assert.False(message.Contains(word, StringComparison.Ordinal), $"'{word}' in: {message}");
        }
    }
}
