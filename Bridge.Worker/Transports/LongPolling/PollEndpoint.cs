using System.Text;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Bridge.Worker.Transports.Http;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Transports.LongPolling;

/// <summary>
/// <c>GET /poll?rooms=a,b&amp;cursor=...</c>: the fallback when neither WebSocket nor SSE gets through. The request
/// joins the rooms from the cursor's positions (exactly like an SSE resume), waits until at least one message
/// is there or <c>PollTimeout</c> passes, and answers <c>{cursor, messages}</c>; the next poll passes that
/// cursor. A sequence of polls sees every message exactly once.
/// </summary>
internal sealed class PollEndpoint(
    ConnectionHost host,
    RoomJoiner joiner,
    Operations.BridgeMetrics metrics,
    IOptions<ConnectionOptions> options,
    IOptions<ShutdownOptions> shutdown,
    IHostApplicationLifetime lifetime,
    TimeProvider time)
{
    public const string Path = "/poll";

    public Task HandleAsync(HttpContext context) =>
        host.RunAsync(context, new Poll(joiner, metrics, options.Value, shutdown.Value, lifetime, time));

    /// <summary>One poll: its rooms and cursor, and what it answers.</summary>
    private sealed class Poll(
        RoomJoiner joiner,
        Operations.BridgeMetrics metrics,
        ConnectionOptions options,
        ShutdownOptions shutdown,
        IHostApplicationLifetime lifetime,
        TimeProvider time) : IConnectionTransport
    {
        private readonly List<byte[]> _messages = [];
        private readonly List<byte[]> _errors = [];
        private readonly List<string> _truncated = [];
        private List<string> _rooms = [];
        private Dictionary<string, ulong> _positions = [];
        private JoinOptions _join;

        public TransportKind Kind => TransportKind.Poll;

        public IFrameCodec Codec => JsonFrameCodec.Instance;

        public TimeSpan? WelcomeHeartbeat => null;

        public async ValueTask<bool> AcceptAsync(HttpContext context, UserIdentity identity)
        {
            if (!HttpErrors.TryParseJoin(context, identity, options, out _rooms, out _join, out var refused))
            {
                await refused!.ExecuteAsync(context);
                return false;
            }

            var cursor = context.Request.Query["cursor"].ToString();
            if (!Cursor.TryParse(cursor, _rooms, out _positions))
            {
                await HttpErrors.Problem(StatusCodes.Status400BadRequest, ErrorCodes.InvalidArgument,
                    Cursor.RefusalMessage("cursor", cursor)).ExecuteAsync(context);
                return false;
            }

            return true;
        }

        // Room for one full answer plus a join answer per room; a replay beyond it waits (and is cut off when
        // the poll answers: the next poll resumes from the cursor).
        public OutboundQueue CreateQueue() =>
            new(options.PollMaxMessages + _rooms.Count + 16, Math.Max(options.SendQueueMaxBytes, (long)options.PollMaxMessages * options.MaxFrameBytes));

        public async Task RunAsync(HttpContext context, ClientSession session)
        {
            var rooms = _rooms;
            var positions = _positions;
            var messages = _messages;
            using var expiry = new CancellationTokenSource(options.PollTimeout, time);
            // A shutting-down worker answers at once, with what it has and a server.shutdown notice.
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, expiry.Token, lifetime.ApplicationStopping);
            var joining = joiner.StartJoinsAsync(session, rooms, new Dictionary<string, ulong>(positions), _join);
            using var heartbeatStop = new CancellationTokenSource();
            var heartbeat = HeartbeatAsync(context.Response, options.SseHeartbeatInterval, time, heartbeatStop.Token);
            try
            {
                var reader = session.Queue.Reader;
                try
                {
                    // Answer once something arrived (a message, or a room's truncation: a cursor past its end is told at
                    // once, as SSE tells it), every room has a position (so the cursor resumes them all) and no join is
                    // still reading its backlog (so a long backlog comes in full pages).
                    bool Settled() => (messages.Count > 0 || _truncated.Count > 0) && rooms.All(positions.ContainsKey) && !session.Rooms.AnyJoining;
                    while (messages.Count < options.PollMaxMessages && (!Settled() || reader.Count > 0))
                    {
                        if (!reader.TryRead(out var frame))
                        {
                            // Settled() takes each member's lock, and a member queues a truncated notice under that lock
                            // with the message it follows (a hole in the live feed): once settled, that notice is queued.
                            if (Settled())
                            {
                                if (reader.Count == 0)
                                {
                                    break;
                                }

                                continue;
                            }

                            if (session.CloseRequested is not null || !await reader.WaitToReadAsync(timeout.Token))
                            {
                                break; // the session closed (e.g. the worker is shutting down): answer with what there is
                            }

                            continue;
                        }

                        session.Queue.OnSent(frame);
                        if (frame.AdvancesPosition)
                        {
                            positions[frame.Room!] = frame.Seq;
                        }

                        // A join that found a gap says so ahead of the messages after it (a page may end before its
                        // room.joined) and again in its room.joined: listed once.
                        if (frame.Truncated && !_truncated.Contains(frame.Room!))
                        {
                            _truncated.Add(frame.Room!);
                        }

                        if (frame.Type == MessageTypes.Error)
                        {
                            _errors.Add(frame.Bytes);
                        }
                        else if (frame.IsRoomMessage)
                        {
                            messages.Add(frame.Bytes);
                            // A replayed message is counted, not timed (a timestamp of 0 records no latency).
                            metrics.MessageOut(session.Transport, frame.Bytes.Length, frame.IsTimed ? frame.Timestamp : 0);
                        }
                    }
                }
                catch (OperationCanceledException) when (timeout.IsCancellationRequested && !context.RequestAborted.IsCancellationRequested)
                {
                    // PollTimeout: answer with what there is (possibly nothing) and the cursor.
                }
            }
            finally
            {
                session.RequestClose(CloseCodes.Normal, "poll answered");
                await joining;
                await heartbeatStop.CancelAsync();
                await heartbeat;
            }
        }

        public async Task CompleteAsync(HttpContext context, ClientSession session)
        {
            int? reconnectAfterMs = lifetime.ApplicationStopping.IsCancellationRequested
                ? Random.Shared.Next(Math.Max(1, (int)shutdown.ReconnectSpread.TotalMilliseconds))
                : null;
            var body = Body(Cursor.Format(_rooms, _positions), _messages, _errors, _truncated, reconnectAfterMs);
            if (context.Response.HasStarted)
            {
                // Heartbeats went out: the status and headers are sent, the body follows them.
                await context.Response.WriteAsync(body, Encoding.UTF8, CancellationToken.None);
                return;
            }

            await Results.Text(body, "application/json", Encoding.UTF8).ExecuteAsync(context);
        }
    }

    /// <summary>
    /// While a poll waits, a newline every heartbeat interval (JSON allows whitespace before the value) keeps
    /// proxies from closing the idle response. The first one sends the status and headers.
    /// </summary>
    private static async Task HeartbeatAsync(HttpResponse response, TimeSpan interval, TimeProvider time, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                if (!response.HasStarted)
                {
                    response.StatusCode = StatusCodes.Status200OK;
                    response.ContentType = "application/json; charset=utf-8";
                    response.Headers.CacheControl = "no-cache, no-transform";
                }

                // Not cancelled mid-write: the body must follow a whole heartbeat.
                await response.Body.WriteAsync("\n"u8.ToArray(), CancellationToken.None);
                await response.Body.FlushAsync(CancellationToken.None);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or ObjectDisposedException)
        {
            // Answered, or the client went away.
        }
    }

    private static string Body(string cursor, List<byte[]> messages, List<byte[]> errors, List<string> truncated, int? reconnectAfterMs)
    {
        var sb = new StringBuilder();
        sb.Append("{\"cursor\":\"").Append(cursor).Append("\",\"messages\":[");
        AppendAll(sb, messages);
        sb.Append("],\"errors\":[");
        AppendAll(sb, errors);
        sb.Append("],\"truncated\":[");
        sb.Append(string.Join(',', truncated.Select(r => $"\"{r}\"")));
        sb.Append(']');
        if (reconnectAfterMs is { } delay)
        {
            sb.Append(",\"shutdown\":{\"type\":\"").Append(MessageTypes.ServerShutdown)
              .Append("\",\"payload\":{\"reconnect_after_ms\":").Append(delay).Append("}}");
        }

        sb.Append('}');
        return sb.ToString();
    }

    private static void AppendAll(StringBuilder sb, List<byte[]> frames)
    {
        for (var i = 0; i < frames.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(',');
            }

            sb.Append(Encoding.UTF8.GetString(frames[i]));
        }
    }
}
