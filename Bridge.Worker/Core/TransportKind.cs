namespace Bridge.Worker.Core;

/// <summary>How a client is connected.</summary>
internal enum TransportKind
{
    /// <summary><c>/ws</c>: both ways; closed with a close code.</summary>
    WebSocket,

    /// <summary><c>/sse</c>: a one-way event stream.</summary>
    Sse,

    /// <summary><c>/poll</c>: one request that answers within <c>PollTimeout</c>.</summary>
    Poll,
}

internal static class TransportKinds
{
    /// <summary>The <c>transport</c> label of metrics and the <c>Transport</c> field of log scopes.</summary>
    public static string Label(this TransportKind kind) => kind switch
    {
        TransportKind.WebSocket => "websocket",
        TransportKind.Sse => "sse",
        TransportKind.Poll => "poll",
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, null),
    };

    /// <summary>
    /// True for a transport whose close carries a code and a reason (WebSocket). A one-way stream has none: it is sent
    /// a notice frame instead (<c>server.shutdown</c>, <c>server.disconnect</c>), and its transport ends once it wrote it.
    /// </summary>
    public static bool ClosesWithCode(this TransportKind kind) => kind == TransportKind.WebSocket;

    /// <summary>
    /// True for a connection that stays open (WebSocket, SSE): it is tracked (drained at shutdown, swept for stalls,
    /// closed by the backend API) and closed when its token expires. A long-poll is one short request: neither.
    /// </summary>
    public static bool StaysOpen(this TransportKind kind) => kind != TransportKind.Poll;

    /// <summary>
    /// True for a transport that may answer part way through a join's replay (a long-poll answers a page of
    /// <c>PollMaxMessages</c>, and the next poll resumes from inside retention): a gap its join finds is also told before
    /// the messages after it (<c>room.joined</c> with <c>truncated</c>), not only by the <c>room.joined</c> after the
    /// replay, which such a page may never reach.
    /// </summary>
    public static bool AnswersMidReplay(this TransportKind kind) => kind == TransportKind.Poll;
}
