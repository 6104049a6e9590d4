namespace Bridge.Worker.Core;

/// <summary>One user in a room, over all workers (what presence holds, <c>presence.state</c> and the backend API list).</summary>
internal sealed record PresenceMember(string User, int Connections, long Since);
