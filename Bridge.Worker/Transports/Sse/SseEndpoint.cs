using System.Buffers;
using System.Globalization;
using System.Text;
using Bridge.Contracts;
using Bridge.Worker.Connections;
using Bridge.Worker.Operations;
using Bridge.Worker.Protocol;
using Bridge.Worker.Security;
using Bridge.Worker.Transports.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;

namespace Bridge.Worker.Transports.Sse;

/// <summary>
/// <c>GET /sse?rooms=a,b</c>: Server-Sent Events. Each frame is <c>event: &lt;type&gt;</c> and <c>data: &lt;JSON
/// envelope&gt;</c>; frames that advance a room (its messages, <c>room.joined</c>) carry <c>id: &lt;cursor&gt;</c>,
/// the position of every room of the stream (see <see cref="Cursor"/>). A reconnect with <c>Last-Event-ID</c>
/// (sent by EventSource itself) or <c>?lastEventId=</c> resumes each room from its own position, on any worker.
/// </summary>
internal sealed partial class SseEndpoint(
    ConnectionHost host,
    RoomJoiner joiner,
    BridgeMetrics metrics,
    IOptions<ConnectionOptions> options,
    IOptions<WorkerOptions> worker,
    TimeProvider time,
    ILogger<SseEndpoint> logger)
{
    public const string Path = "/sse";

    private static readonly byte[] HeartbeatBytes = ": heartbeat\n\n"u8.ToArray();

    // Bytes written to the response between flushes while a backlog drains.
    private const int FlushEvery = 32 * 1024;

    public Task HandleAsync(HttpContext context) => host.RunAsync(context, new Stream(this, joiner, metrics, options.Value, worker.Value.Id, time));

    /// <summary>One event stream: its rooms and their positions, from the query and <c>Last-Event-ID</c>.</summary>
    private sealed class Stream(
        SseEndpoint endpoint, RoomJoiner joiner, BridgeMetrics metrics, ConnectionOptions options, string workerId, TimeProvider time) : IConnectionTransport
    {
        private List<string> _rooms = [];
        private Dictionary<string, ulong> _positions = [];
        private JoinOptions _join;

        public TransportKind Kind => TransportKind.Sse;

        public IFrameCodec Codec => JsonFrameCodec.Instance;

        public TimeSpan? WelcomeHeartbeat => options.SseHeartbeatInterval;

        public async ValueTask<bool> AcceptAsync(HttpContext context, UserIdentity identity)
        {
            if (!HttpErrors.TryParseJoin(context, identity, options, out _rooms, out _join, out var refused))
            {
                await refused!.ExecuteAsync(context);
                return false;
            }

            var lastEventId = context.Request.Headers["Last-Event-ID"].ToString();
            if (string.IsNullOrEmpty(lastEventId))
            {
                lastEventId = context.Request.Query["lastEventId"].ToString();
            }

            if (!Cursor.TryParse(lastEventId, _rooms, out _positions))
            {
                await HttpErrors.Problem(StatusCodes.Status400BadRequest, ErrorCodes.InvalidArgument,
                    Cursor.RefusalMessage("Last-Event-ID", lastEventId)).ExecuteAsync(context);
                return false;
            }

            var response = context.Response;
            response.ContentType = "text/event-stream";
            response.Headers.CacheControl = "no-cache, no-transform";
            response.Headers.ContentEncoding = "identity";
            // nginx and similar proxies: do not buffer this response.
            response.Headers["X-Accel-Buffering"] = "no";
            context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
            return true;
        }

        public OutboundQueue CreateQueue() => new(options.SendQueueCapacity, options.SendQueueMaxBytes, options.ConflatedQueueFrames, options.ConflatedQueueBytes);

        public async Task RunAsync(HttpContext context, ClientSession session)
        {
            var response = context.Response;
            // A client that goes away ends the stream at once, not at the next write.
            using var gone = context.RequestAborted.Register(static s => ((ClientSession)s!).RequestClose(CloseCodes.Normal, "client went away"), session);
            endpoint.LogOpened(session.ConnectionId, _rooms.Count, _positions.Count);
            try
            {
                // Written before the queue (which holds welcome already).
                await WriteAsync(response, $"retry: {(long)options.SseRetry.TotalMilliseconds}\n: {workerId}\n\n", context.RequestAborted);
                await response.Body.FlushAsync(context.RequestAborted);
                var joining = joiner.StartJoinsAsync(session, _rooms, new Dictionary<string, ulong>(_positions), _join);
                using var stop = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, session.Closing);
                var heartbeat = HeartbeatAsync(session, options.SseHeartbeatInterval, time, stop.Token);
                try
                {
                    await SendLoopAsync(response, session, _rooms, _positions, metrics, context.RequestAborted);
                }
                finally
                {
                    session.RequestClose(CloseCodes.Normal, "closed");
                    await stop.CancelAsync();
                    await heartbeat;
                    await joining;
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException)
            {
                // The client went away: the normal end of an event stream.
            }
            finally
            {
                session.RequestClose(CloseCodes.Normal, "closed");
                endpoint.LogClosed(session.ConnectionId, session.CloseRequested?.Reason ?? "closed");
            }
        }

        public Task CompleteAsync(HttpContext context, ClientSession session) => Task.CompletedTask;
    }

    private static async Task SendLoopAsync(
        HttpResponse response, ClientSession session, List<string> rooms, Dictionary<string, ulong> positions, BridgeMetrics metrics,
        CancellationToken aborted)
    {
        var reader = session.Queue.Reader;
        var writer = response.BodyWriter;
        var events = new SseEventWriter(writer, rooms, positions);
        var sent = new SentMessages(metrics, session.Transport);
        try
        {
            while (session.CloseRequested is null && await reader.WaitToReadAsync(session.Closing))
            {
                while (session.CloseRequested is null && reader.TryRead(out var frame))
                {
                    // A frame counts as sent once written to the response; flushing every so often keeps what the
                    // response holds unsent small, so a client that stops reading backs up into the bounded queue.
                    if (events.Unflushed > FlushEvery)
                    {
                        sent.Flush();
                        events.Commit();
                        await writer.FlushAsync(aborted);
                    }

                    events.Write(frame);
                    session.Queue.OnSent(frame);
                    sent.Add(frame);

                    // Both end the stream once written (a backend's disconnect: docs/protocol.md §13).
                    if (frame.Type is MessageTypes.ServerShutdown or MessageTypes.ServerDisconnect)
                    {
                        sent.Flush();
                        events.Commit();
                        await writer.FlushAsync(aborted);
                        session.RequestClose(
                            frame.Type == MessageTypes.ServerShutdown ? CloseCodes.ServiceRestart : CloseCodes.Disconnected,
                            frame.Type == MessageTypes.ServerShutdown ? "service restart" : "disconnected by the backend");
                    }
                }

                sent.Flush();
                events.Commit();
                await writer.FlushAsync(aborted);
            }
        }
        catch (OperationCanceledException) when (session.Closing.IsCancellationRequested)
        {
        }
        finally
        {
            // Written into the response but not flushed yet when the loop ended: counted as sent, as before.
            sent.Flush();
        }
    }

    private static async Task HeartbeatAsync(ClientSession session, TimeSpan interval, TimeProvider time, CancellationToken cancellationToken)
    {
        using var timer = new PeriodicTimer(interval, time);
        try
        {
            while (await timer.WaitForNextTickAsync(cancellationToken))
            {
                session.Send(new OutboundFrame(HeartbeatBytes, SseEventWriter.HeartbeatType));
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    private static Task WriteAsync(HttpResponse response, string text, CancellationToken cancellationToken) =>
        response.Body.WriteAsync(Encoding.ASCII.GetBytes(text), cancellationToken).AsTask();

    [LoggerMessage(EventId = 3101, Level = LogLevel.Debug, Message = "SSE {ConnectionId} opened: {Rooms} rooms, {Resumed} resumed")]
    private partial void LogOpened(string connectionId, int rooms, int resumed);

    [LoggerMessage(EventId = 3102, Level = LogLevel.Debug, Message = "SSE {ConnectionId} closed: {Reason}")]
    private partial void LogClosed(string connectionId, string reason);
}
