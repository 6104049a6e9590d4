using Bridge.Worker.Rooms;

namespace Bridge.Worker.Nats;

/// <summary>
/// The last stored seq of many rooms' subjects, asked for one at a time (or a batch join's all at once) and answered
/// together: the asks that arrive while earlier ones are in flight go out in one <c>multi_last</c> batch direct get
/// (<see cref="StreamDirectGet"/>, up to <see cref="StreamDirectGet.MaxSubjectsPerRequest"/> subjects). A lone ask is
/// sent at once. 100,000 rooms activating at once (a dashboard fleet after a deploy) cost about a hundred requests
/// instead of 100,000.
/// </summary>
/// <remarks>
/// Group commit, no background loop: an ask that finds fewer than <see cref="MaxInFlight"/> batches in flight sends
/// the next batch itself (its own ask included), and the sending it started goes on while asks are waiting; the asker
/// does not wait for that, only for its own answer. A batch is sent on the
/// same NATS connection after every ask in it was made, so it is answered after whatever the asker wrote before (the
/// subscription a room's seam relies on: <see cref="NatsRoomFeedFactory"/>). A failed batch fails each of its asks; a
/// batch that could not even be sent (<see cref="RequestNotSentException"/>: NATS down or frozen) fails every ask
/// waiting too, at once, rather than one batch (one request timeout) after another.
/// </remarks>
/// <param name="directGet">The direct gets the batches go out as.</param>
/// <param name="faulted">Told of a sender's unexpected failure (a bug: its asks fail, its place in flight is given back).</param>
internal sealed class LastSeqBatch(StreamDirectGet directGet, Action<Exception>? faulted = null)
{
    // Batches in flight at once: enough to keep the server busy while answers are read, few enough to leave it
    // room for everything else.
    private const int MaxInFlight = 4;

    private readonly Lock _gate = new();
    private List<Waiting> _waiting = [];
    private int _inFlight;

    /// <summary>The seq of the last message stored on <paramref name="subject"/> (a literal subject), or 0 when none is.</summary>
    /// <exception cref="NATS.Client.JetStream.NatsJSException">The server answered an error, or not within the direct get's timeout.</exception>
    public ValueTask<ulong> GetAsync(string subject, CancellationToken cancellationToken)
    {
        var ask = new Ask();
        bool send;
        lock (_gate)
        {
            _waiting.Add(new Waiting(subject, ask, 0));
            send = TakeSender();
        }

        // No ask has a state machine of its own: the few that send start the sending, which goes on without them.
        if (send)
        {
            StartSending();
        }

        return new ValueTask<ulong>(ask.Task.WaitAsync(cancellationToken));
    }

    /// <summary>
    /// The last stored seq of each of <paramref name="subjects"/> (literal subjects; 0 when none is), asked for together
    /// (a batch join's rooms): one entry per subject, in order, each its seq or the failure of the request that carried
    /// it. Never throws for a failed request: one request's failure is only its subjects'.
    /// </summary>
    public async Task<LastSeq[]> GetManyAsync(IReadOnlyList<string> subjects, CancellationToken cancellationToken)
    {
        if (subjects.Count == 0)
        {
            return [];
        }

        var ask = new ManyAsk(subjects.Count);
        bool send;
        lock (_gate)
        {
            _waiting.EnsureCapacity(_waiting.Count + subjects.Count);
            for (var i = 0; i < subjects.Count; i++)
            {
                _waiting.Add(new Waiting(subjects[i], ask, i));
            }

            send = TakeSender();
        }

        if (send)
        {
            StartSending();
        }

        return await ask.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Under the gate: true when the caller is to send batches (fewer than <see cref="MaxInFlight"/> are in flight).</summary>
    private bool TakeSender()
    {
        if (_inFlight >= MaxInFlight)
        {
            return false;
        }

        _inFlight++;
        return true;
    }

    /// <summary>
    /// Sends the batches without the caller awaiting them (each after every ask in it was made): an asker whose batch is answered has its answer then, not once the asks that
    /// came meanwhile are answered too (under steady load, never).
    /// </summary>
    private void StartSending() =>
        _ = SendWhileWaitingAsync().ContinueWith(
            static (task, state) => ((Action<Exception>?)state)?.Invoke(task.Exception!.GetBaseException()),
            faulted, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);

    /// <summary>
    /// Sends batches until no ask is waiting (a batch's failure is its asks'). Not an asker's token: the batch answers
    /// other asks too (bounded by the request timeout). Should anything here throw all the same, the place in flight is
    /// given back and the asks this sender held or that wait are failed, so none hangs; the fault goes to the log.
    /// </summary>
    private async Task SendWhileWaitingAsync()
    {
        List<Waiting>? batch = null;
        try
        {
            while (true)
            {
                lock (_gate)
                {
                    if (_waiting.Count == 0)
                    {
                        _inFlight--;
                        return;
                    }

                    if (_waiting.Count <= StreamDirectGet.MaxSubjectsPerRequest)
                    {
                        batch = _waiting;
                        _waiting = [];
                    }
                    else
                    {
                        batch = _waiting.GetRange(0, StreamDirectGet.MaxSubjectsPerRequest);
                        _waiting.RemoveRange(0, StreamDirectGet.MaxSubjectsPerRequest);
                    }
                }

                await SendAsync(batch);
                batch = null;
            }
        }
        catch (Exception ex)
        {
            List<Waiting> waiting;
            lock (_gate)
            {
                _inFlight--;
                waiting = _waiting;
                _waiting = [];
            }

            Fail(batch, ex);
            Fail(waiting, ex);
            throw;
        }
    }

    /// <summary>Sends one batch and answers its asks, or fails them (and, when it was not sent, every ask waiting).</summary>
    private async Task SendAsync(List<Waiting> batch)
    {
        try
        {
            var found = await directGet.GetLastManyAsync(batch.ConvertAll(a => a.Subject));
            foreach (var waiting in batch)
            {
                waiting.Answer.Answer(waiting.Index, found.TryGetValue(waiting.Subject, out var last) ? last.Seq : 0);
            }
        }
        catch (Exception ex)
        {
            Fail(batch, ex);
            if (ex is RequestNotSentException)
            {
                // The next batches would not be sent either, each after a timeout of its own: the asks waiting (in a
                // reconnect storm, thousands) fail now. Asks made after this are sent again, in case NATS is back.
                List<Waiting> waiting;
                lock (_gate)
                {
                    waiting = _waiting;
                    _waiting = [];
                }

                Fail(waiting, ex);
            }
        }
    }

    private static void Fail(List<Waiting>? asks, Exception exception)
    {
        foreach (var waiting in asks ?? [])
        {
            waiting.Answer.Fail(waiting.Index, exception);
        }
    }

    /// <summary>A subject waiting for the next batch, and where its answer goes (an ask's entry <see cref="Index"/>).</summary>
    private readonly record struct Waiting(string Subject, IAnswer Answer, int Index);

    private interface IAnswer
    {
        void Answer(int index, ulong seq);

        void Fail(int index, Exception exception);
    }

    /// <summary>One subject's ask: its answer (one allocation per room activated alone).</summary>
    private sealed class Ask() : TaskCompletionSource<ulong>(TaskCreationOptions.RunContinuationsAsynchronously), IAnswer
    {
        public void Answer(int index, ulong seq) => TrySetResult(seq);

        public void Fail(int index, Exception exception) => TrySetException(exception);
    }

    /// <summary>Many subjects' asks (<see cref="GetManyAsync"/>): completed once every entry is answered or failed.</summary>
    private sealed class ManyAsk(int count) : TaskCompletionSource<LastSeq[]>(TaskCreationOptions.RunContinuationsAsynchronously), IAnswer
    {
        private readonly LastSeq[] _answers = new LastSeq[count];
        private int _left = count;

        public void Answer(int index, ulong seq) => Set(index, new LastSeq(seq, null));

        public void Fail(int index, Exception exception) => Set(index, new LastSeq(0, exception));

        private void Set(int index, LastSeq answer)
        {
            _answers[index] = answer;
            if (Interlocked.Decrement(ref _left) == 0)
            {
                TrySetResult(_answers);
            }
        }
    }
}
