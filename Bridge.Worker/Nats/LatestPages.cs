using Bridge.Worker.Rooms;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

/// <summary>
/// The newest stored message of each room of a room or pattern, as of one stream seq, read with batched direct gets
/// (<c>multi_last</c>) a page at a time: no consumer, and each page no larger than the member's send queue has room for.
/// </summary>
/// <remarks>
/// A pattern matching at most <see cref="StreamDirectGet.MaxSubjectsPerRequest"/> rooms is read with its own wildcard.
/// Beyond that the server refuses the wildcard (413): the pattern's rooms are listed from the stream's state (one stream
/// info request with a subject filter) and read in lists of that many. Every request reads the rooms as of the same
/// stream seq, so the pages together are one consistent picture. The rooms are counted before the first message is
/// returned, and a read of more than the join's limit is refused as a whole.
/// </remarks>
internal sealed class LatestPages : ILatestPages
{
    private readonly StreamDirectGet _get;
    private readonly Func<StoredMessage, RoomMessage?> _create;
    private readonly Queue<IReadOnlyList<string>> _lists;
    private readonly ulong _afterSeq;
    private readonly ulong _upToSeq;
    private readonly Queue<StoredMessage> _first = new();
    private IReadOnlyList<string>? _list;
    private ulong _after;

    private LatestPages(
        StreamDirectGet get, Func<StoredMessage, RoomMessage?> create, IEnumerable<IReadOnlyList<string>> lists, ulong afterSeq, ulong upToSeq,
        int rooms)
    {
        _get = get;
        _create = create;
        _lists = new Queue<IReadOnlyList<string>>(lists);
        _afterSeq = afterSeq;
        _upToSeq = upToSeq;
        Rooms = rooms;
        NextList();
    }

    public int Rooms { get; }

    /// <summary>
    /// Counts the rooms of <paramref name="subject"/> (a room's subject, or a pattern's) with a newest message after
    /// <paramref name="afterSeq"/> as of <paramref name="upToSeq"/>, refusing more than <paramref name="maxRooms"/>.
    /// </summary>
    /// <exception cref="LatestLimitException">More rooms than <paramref name="maxRooms"/>.</exception>
    public static async ValueTask<LatestPages> OpenAsync(
        StreamDirectGet get, INatsJSContext js, string subject, ulong afterSeq, ulong upToSeq, int maxRooms,
        Func<StoredMessage, RoomMessage?> create, CancellationToken cancellationToken)
    {
        if (upToSeq <= afterSeq)
        {
            return new LatestPages(get, create, [], afterSeq, upToSeq, 0);
        }

        // One message first: it says how many follow (Nats-Num-Pending), so the rooms are counted before any is sent.
        var probe = await get.GetLastBatchAsync([subject], afterSeq, upToSeq, 1, 0, cancellationToken);
        if (!probe.TooManySubjects)
        {
            var rooms = probe.Messages.Count + (int)Math.Min(probe.Pending, int.MaxValue - 1);
            if (rooms > maxRooms)
            {
                throw new LatestLimitException(maxRooms);
            }

            var pages = new LatestPages(get, create, rooms == 0 ? [] : [[subject]], afterSeq, upToSeq, rooms);
            foreach (var message in probe.Messages)
            {
                pages._first.Enqueue(message);
                pages._after = message.Seq;
            }

            if (probe.Pending == 0)
            {
                pages._list = null; // the probe was all of it
            }

            return pages;
        }

        // More subjects than one multi_last may match: list them (their count is an upper bound of the rooms with a
        // message in range) and read them in lists of the most one request may name.
        var stream = await js.GetStreamAsync(get.Stream, new StreamInfoRequest { SubjectsFilter = subject }, cancellationToken);
        var subjects = stream.Info.State.Subjects?.Keys.Order(StringComparer.Ordinal).ToList() ?? [];
        if (subjects.Count > maxRooms)
        {
            throw new LatestLimitException(maxRooms);
        }

        return new LatestPages(get, create, subjects.Chunk(StreamDirectGet.MaxSubjectsPerRequest), afterSeq, upToSeq, subjects.Count);
    }

    public async ValueTask<IReadOnlyList<RoomMessage>> NextAsync(ReadLimit limit, CancellationToken cancellationToken)
    {
        var page = new List<RoomMessage>();
        while (_first.TryDequeue(out var first))
        {
            Add(page, first);
        }

        while (page.Count == 0 && _list is not null)
        {
            var batch = await _get.GetLastBatchAsync(
                _list, _after, _upToSeq, Math.Min(limit.MaxMessages, StreamDirectGet.MaxSubjectsPerRequest), limit.Bytes, cancellationToken);
            if (batch.TooManySubjects)
            {
                // A list is never more than one request may name; a wildcard counted under it cannot have grown past
                // it as of the same seq. Only a server with a lower limit gets here.
                throw new NatsJSException($"the stream refused to read the last messages of {_list.Count} subjects at once");
            }

            foreach (var message in batch.Messages)
            {
                Add(page, message);
                _after = message.Seq;
            }

            if (batch.Pending == 0 || batch.Messages.Count == 0)
            {
                NextList();
            }
        }

        return page;
    }

    private void Add(List<RoomMessage> page, StoredMessage stored)
    {
        // A subject that is no room name (a backend's) is left out, as the live feed leaves it out.
        if (_create(stored) is { } message)
        {
            page.Add(message);
        }
    }

    private void NextList()
    {
        _list = _lists.TryDequeue(out var list) ? list : null;
        _after = _afterSeq;
    }
}
