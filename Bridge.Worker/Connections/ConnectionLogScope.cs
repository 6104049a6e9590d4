using System.Collections;

namespace Bridge.Worker.Connections;

/// <summary>
/// The log scope of everything a connection does: its id, user and transport become fields of each log entry
/// (JSON logs include scopes). Never the token, never payloads.
/// </summary>
internal sealed class ConnectionLogScope(string connectionId, string user, TransportKind transport) : IReadOnlyList<KeyValuePair<string, object?>>
{
    public int Count => 3;

    public KeyValuePair<string, object?> this[int index] => index switch
    {
        0 => new("ConnectionId", connectionId),
        1 => new("User", user),
        2 => new("Transport", transport.Label()),
        _ => throw new ArgumentOutOfRangeException(nameof(index)),
    };

    public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
    {
        for (var i = 0; i < Count; i++)
        {
            yield return this[i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    public override string ToString() => $"{transport.Label()} {connectionId} user {user}";
}
