namespace Bridge.Worker.Nats;

/// <summary>
/// The last stored seq of many rooms' subjects, asked for one at a time and answered together: the asks that arrive
/// while earlier ones are in flight go out in one <c>multi_last</c> batch direct get (<see cref="StreamDirectGet"/>,
/// up to <see cref="StreamDirectGet.MaxSubjectsPerRequest"/> subjects). A lone ask is sent at once. 100,000 rooms
/// activating at once (a dashboard fleet after a deploy) cost about a hundred requests instead of 100,000.
/// </summary>
/// <remarks>
/// Group commit, no background loop: an ask that finds fewer than <see cref="MaxInFlight"/> batches in flight sends
/// the next batch itself (its own ask included) and goes on sending while asks are waiting. A batch is sent on the
/// same NATS connection after every ask in it was made, so it is answered after whatever the asker wrote before (the
/// subscription a room's seam relies on: <see cref="NatsRoomFeedFactory"/>). A failed batch fails each of its asks.
/// </remarks>
internal sealed class LastSeqBatch(StreamDirectGet directGet)
{
    // Batches in flight at once: enough to keep the server busy while answers are read, few enough to leave it
    // room for everything else.
    private const int MaxInFlight = 4;

    private readonly Lock _gate = new();
    private List<Ask> _waiting = [];
    private int _inFlight;

    /// <summary>The seq of the last message stored on <paramref name="subject"/> (a literal subject), or 0 when none is.</summary>
    /// <exception cref="NATS.Client.JetStream.NatsJSException">The server answered an error, or not within the direct get's timeout.</exception>
    public ValueTask<ulong> GetAsync(string subject, CancellationToken cancellationToken)
    {
        var ask = new Ask(subject);
        bool send;
        lock (_gate)
        {
            _waiting.Add(ask);
            send = _inFlight < MaxInFlight;
            if (send)
            {
                _inFlight++;
            }
        }

        // Most asks only wait (no state machine of their own); the few that send await the batches first.
        return send ? SendThenWaitAsync(ask, cancellationToken) : new ValueTask<ulong>(ask.Task.WaitAsync(cancellationToken));
    }

    private async ValueTask<ulong> SendThenWaitAsync(Ask ask, CancellationToken cancellationToken)
    {
        await SendWhileWaitingAsync();
        return await ask.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Sends batches until no ask is waiting. Not the asker's token: the batch answers other asks too (bounded by the request timeout).</summary>
    private async Task SendWhileWaitingAsync()
    {
        while (true)
        {
            List<Ask> batch;
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

            try
            {
                var found = await directGet.GetLastManyAsync(batch.ConvertAll(a => a.Subject));
                foreach (var ask in batch)
                {
                    ask.TrySetResult(found.TryGetValue(ask.Subject, out var last) ? last.Seq : 0);
                }
            }
            catch (Exception ex)
            {
                foreach (var ask in batch)
                {
                    ask.TrySetException(ex);
                }
            }
        }
    }

    /// <summary>One ask: its subject and its answer in one object (one allocation per room activated, not two).</summary>
    private sealed class Ask(string subject) : TaskCompletionSource<ulong>(TaskCreationOptions.RunContinuationsAsynchronously)
    {
        public string Subject { get; } = subject;
    }
}
