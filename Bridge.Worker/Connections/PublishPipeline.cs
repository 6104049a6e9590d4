using System.Threading.Channels;

namespace Bridge.Worker.Connections;

/// <summary>
/// A connection's publishes waiting for their stream ack. The receive loop writes each publish to NATS (so they are
/// stored in the order sent) and hands its answer here; one loop awaits the answers in that order and sends them.
/// At most <c>capacity</c> wait in the queue (plus the one being answered): the receive loop waits for a place before
/// it publishes the next, which pushes back on a client that sends faster than the stream stores. Created by a
/// connection's first publish.
/// </summary>
internal sealed class PublishPipeline
{
    private readonly Channel<Func<CancellationToken, ValueTask>> _answers;
    private readonly CancellationToken _closing;
    private readonly Task _loop;

    public PublishPipeline(int capacity, CancellationToken closing)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _answers = Channel.CreateBounded<Func<CancellationToken, ValueTask>>(new BoundedChannelOptions(capacity)
        {
            SingleReader = true,
            SingleWriter = true,
            FullMode = BoundedChannelFullMode.Wait,
        });
        _closing = closing;
        // A closing connection sends nothing more: the loop answers what is left at once (with a cancelled token,
        // which releases each publish's ack subscription) and ends.
        closing.UnsafeRegister(static s => ((Channel<Func<CancellationToken, ValueTask>>)s!).Writer.TryComplete(), _answers);
        _loop = Task.Run(LoopAsync, CancellationToken.None);
    }

    /// <summary>Waits until another publish may start; false once the connection is closing.</summary>
    public ValueTask<bool> WaitForPlaceAsync(CancellationToken cancellationToken) => _answers.Writer.WaitToWriteAsync(cancellationToken);

    /// <summary>
    /// Queues the answer of a started publish. <paramref name="answer"/> awaits the ack and sends the reply; it gets a
    /// token cancelled when the connection closes, and must not throw. Answered at once if the connection is closing.
    /// </summary>
    public ValueTask AddAsync(Func<CancellationToken, ValueTask> answer)
    {
        ArgumentNullException.ThrowIfNull(answer);
        return _answers.Writer.TryWrite(answer) ? ValueTask.CompletedTask : answer(new CancellationToken(canceled: true));
    }

    /// <summary>Completes when every queued answer has run (after the connection closed).</summary>
    public Task Completion => _loop;

    private async Task LoopAsync()
    {
        await foreach (var answer in _answers.Reader.ReadAllAsync(CancellationToken.None))
        {
            await answer(_closing);
        }
    }
}
