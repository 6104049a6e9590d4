using System.Threading.Channels;
using Bridge.Contracts;
using Bridge.Worker.Nats;
using Bridge.Worker.Publishing;

namespace Bridge.Worker.Connections;

/// <summary>A publish written to NATS whose answer the client is still owed: its pending ack, and the room and id the answer names.</summary>
internal readonly record struct PublishInFlight(PendingPublish Ack, string Room, string? Id);

/// <summary>
/// A connection's publishes waiting for their stream ack. The receive loop writes each publish to NATS (so they are
/// stored in the order sent) and hands it here; one loop awaits the acks in that order and answers each (the
/// handler's <c>answer</c>, given when the first publish created the pipeline). The loop awaits NATS.Net's ack itself
/// and the answer is synchronous, so an ack that is not in yet costs the loop's one state machine, not one per
/// publish (docs/benchmarks.md, "Ingest"). At most <c>capacity</c> wait in the
/// queue (plus the one being answered): the receive loop waits for a place before it publishes the next, which pushes
/// back on a client that sends faster than the stream stores.
/// </summary>
internal sealed partial class PublishPipeline
{
    private readonly Channel<PublishInFlight> _waiting;
    private readonly ClientSession _session;
    private readonly Action<ClientSession, PublishInFlight, AwaitedAck, CancellationToken> _answer;
    private readonly ILogger _logger;
    private readonly Task _loop;

    /// <param name="session">The connection; its closing ends the pipeline once what is queued is answered.</param>
    /// <param name="capacity">Publishes that may wait for their ack at once (<c>MaxPublishesInFlight</c>).</param>
    /// <param name="answer">
    /// Answers the client once the ack is awaited; gets a token cancelled when the connection closes. Should it throw
    /// anything but <see cref="OperationCanceledException"/>, the publish is answered <c>publish_failed</c> (logged) and
    /// the loop goes on with the next.
    /// </param>
    /// <param name="logger">Where an answer that threw is logged.</param>
    public PublishPipeline(ClientSession session, int capacity, Action<ClientSession, PublishInFlight, AwaitedAck, CancellationToken> answer, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(session);
        ArgumentNullException.ThrowIfNull(answer);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _session = session;
        _answer = answer;
        _logger = logger;
        _waiting = Channel.CreateBounded<PublishInFlight>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        // A closing connection sends nothing more: the loop answers what is left at once (with a cancelled token,
        // which stops waiting for each ack) and ends.
        session.Closing.UnsafeRegister(static s => ((Channel<PublishInFlight>)s!).Writer.TryComplete(), _waiting);
        _loop = Task.Run(LoopAsync, CancellationToken.None);
    }

    /// <summary>Waits until another publish may start; false once the connection is closing.</summary>
    public ValueTask<bool> WaitForPlaceAsync(CancellationToken cancellationToken) => _waiting.Writer.WaitToWriteAsync(cancellationToken);

    /// <summary>Queues a started publish for its answer; answered at once (as closing) if the connection is closing.</summary>
    public ValueTask AddAsync(PublishInFlight publish) =>
        _waiting.Writer.TryWrite(publish) ? ValueTask.CompletedTask : AnswerClosingAsync(publish);

    /// <summary>Completes when every queued publish has been answered (after the connection closed).</summary>
    public Task Completion => _loop;

    private async Task LoopAsync()
    {
        var closing = _session.Closing;
        await foreach (var publish in _waiting.Reader.ReadAllAsync(CancellationToken.None))
        {
            // PendingPublish.SettleAsync, inlined: awaited here, an ack not in yet costs no state machine of its own.
            // Each publish ends within PublishTimeout (its deadline, RoomPublisher.Start), so the loop never waits
            // longer for one, whatever NATS does.
            AwaitedAck awaited;
            try
            {
                awaited = new AwaitedAck(await publish.Ack.Ack, null);
            }
            catch (Exception ex)
            {
                awaited = new AwaitedAck(null, publish.Ack.Settled(ex));
            }
            finally
            {
                publish.Ack.Release();
            }

            Answer(publish, awaited, closing);
        }
    }

    private async ValueTask AnswerClosingAsync(PublishInFlight publish) =>
        Answer(publish, await publish.Ack.SettleAsync(), new CancellationToken(canceled: true));

    // One publish's answer never costs the others theirs: should it throw, the loop goes on (the queue behind it would
    // otherwise never be answered, and the receive loop would wait for a place until the connection closed).
    private void Answer(PublishInFlight publish, AwaitedAck awaited, CancellationToken closing)
    {
        try
        {
            _answer(_session, publish, awaited, closing);
        }
        catch (OperationCanceledException)
        {
            // Closing: nothing more is sent.
        }
        catch (Exception ex)
        {
            LogAnswerFailed(_logger, ex, _session.ConnectionId, publish.Room);
            try
            {
                _session.SendError(ErrorCodes.PublishFailed, PublishService.NotStoredMessage, publish.Id, publish.Room);
            }
            catch (Exception)
            {
                // Not even an error frame could be made: the publish stays unanswered, the others are still answered.
            }
        }
    }

    [LoggerMessage(EventId = 2202, Level = LogLevel.Error, Message = "Answering a publish from connection {ConnectionId} to {Room} failed; answered publish_failed")]
    private static partial void LogAnswerFailed(ILogger logger, Exception exception, string connectionId, string room);
}
