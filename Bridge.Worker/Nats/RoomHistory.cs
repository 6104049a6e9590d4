using System.Runtime.CompilerServices;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Options;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Worker.Nats;

/// <summary>
/// Reads a room's stored messages: positions and single messages by direct get; ranges by a <see cref="Cursor"/> (a
/// batch direct get, then a consumer for long reads). Nothing here holds server state after a call or a cursor.
/// </summary>
internal sealed partial class RoomHistory(
    NatsContext nats, IOptions<NatsOptions> options, RoomMessageReader reader, StreamDirectGet directGet, TimeProvider time, ILogger<RoomHistory> logger)
    : IRoomLog
{
    // Fields, not the primary constructor's parameters: the nested Cursor reads them too.
    private readonly NatsContext _nats = nats;
    private readonly IOptions<NatsOptions> _options = options;
    private readonly RoomMessageReader _reader = reader;
    private readonly StreamDirectGet _directGet = directGet;
    // Rooms' last seqs, many in one multi_last (a burst of activations: every room's seam).
    private readonly LastSeqBatch _lastSeqs = new(directGet, ex => LogLastSeqSenderFailed(logger, ex));
    private readonly TimeProvider _time = time;
    private readonly ILogger<RoomHistory> _logger = logger;
    private INatsJSStream? _stream;

    private async ValueTask<INatsJSStream> StreamAsync(CancellationToken cancellationToken) =>
        _stream ??= await _nats.JetStream.GetStreamAsync(_options.Value.StreamName, cancellationToken: cancellationToken);

    /// <inheritdoc />
    public ValueTask<ulong> GetLastSeqAsync(string room, CancellationToken cancellationToken) =>
        // A room's is batched with other rooms' (and awaited by the caller: no state machine here per room).
        PatternOf(room) is null ? _lastSeqs.GetAsync(_options.Value.RoomSubject(room), cancellationToken) : GetPatternLastSeqAsync(room, cancellationToken);

    /// <inheritdoc />
    public async ValueTask<LastSeq[]> GetLastSeqsAsync(IReadOnlyList<string> rooms, CancellationToken cancellationToken)
    {
        // Patterns are asked one by one (a multi_last answers each matching room's own); rooms all in one batched ask.
        var subjects = new string[rooms.Count];
        for (var i = 0; i < rooms.Count; i++)
        {
            if (PatternOf(rooms[i]) is not null)
            {
                return await IRoomLog.GetLastSeqsOneByOneAsync(this, rooms, cancellationToken);
            }

            subjects[i] = _options.Value.RoomSubject(rooms[i]);
        }

        return await _lastSeqs.GetManyAsync(subjects, cancellationToken);
    }

    /// <summary>A pattern's last seq: the last message of any room it matches (a multi_last would answer each room's own).</summary>
    private async ValueTask<ulong> GetPatternLastSeqAsync(string room, CancellationToken cancellationToken)
    {
        var message = await GetDirectAsync(new StreamMsgGetRequest { LastBySubj = _options.Value.RoomSubject(room) }, cancellationToken);
        return message is null ? 0 : RoomMessageReader.SequenceOf(message.Value.Headers);
    }

    /// <summary>The room's last stored message, or null.</summary>
    public async ValueTask<RoomMessage?> GetLastAsync(string room, CancellationToken cancellationToken)
    {
        var message = await GetDirectAsync(new StreamMsgGetRequest { LastBySubj = _options.Value.RoomSubject(room) }, cancellationToken);
        return message is null ? null : _reader.ReadStamped(room, message.Value);
    }

    /// <inheritdoc />
    public async ValueTask<bool> IsStoredInRoomAsync(string room, ulong seq, CancellationToken cancellationToken)
    {
        var message = await GetDirectAsync(new StreamMsgGetRequest { Seq = seq }, cancellationToken);
        if (RoomMessageReader.ServerValue(message?.Headers, "Nats-Subject") is not { } subject)
        {
            return false;
        }

        // A pattern: the message is of one of the rooms it matches.
        return PatternOf(room) is { } pattern
            ? _options.Value.RoomOf(subject, live: false) is { } of && pattern.Matches(of)
            : subject == _options.Value.RoomSubject(room);
    }

    private static Security.RoomPattern? PatternOf(string name) =>
        Bridge.Contracts.RoomName.IsPattern(name) && Security.RoomPattern.TryParse(name, out var pattern) ? pattern : null;

    private async ValueTask<NatsMsg<byte[]>?> GetDirectAsync(StreamMsgGetRequest request, CancellationToken cancellationToken)
    {
        var stream = await StreamAsync(cancellationToken);
        try
        {
            var message = await stream.GetDirectAsync<byte[]>(request, cancellationToken: cancellationToken);
            // Direct get answers "not found" as a 404 status message rather than an exception. Any other status
            // (408, 503 under load) is a failure, never "no message": callers must not mistake it for the end.
            return message.Headers switch
            {
                { Code: 404 } => null,
                { Code: > 0 and not 200 } h => throw new NatsJSException($"direct get failed with status {h.Code} {h.MessageText}"),
                _ => message,
            };
        }
        catch (NatsJSApiException ex) when (ex.Error.Code == 404)
        {
            return null;
        }
    }

    /// <inheritdoc />
    public async IAsyncEnumerable<RoomMessage> ReadAsync(
        string room, ulong afterSeq, ulong? upToSeq, [EnumeratorCancellation] CancellationToken cancellationToken, ulong mustReach = 0,
        ReadLimit limit = default, DropCheck? check = null)
    {
        await using var cursor = new Cursor(this, room);
        await foreach (var message in cursor.ReadAsync(afterSeq, upToSeq, mustReach, limit, check, cancellationToken))
        {
            yield return message;
        }
    }

    /// <inheritdoc />
    public IRoomCursor OpenCursor(string room) => new Cursor(this, room);

    /// <inheritdoc />
    public async ValueTask<ILatestPages> ReadLatestEachAsync(string room, ulong afterSeq, ulong upToSeq, int maxRooms, CancellationToken cancellationToken) =>
        await LatestPages.OpenAsync(
            _directGet, _nats.JetStream, _options.Value.RoomSubject(room), afterSeq, upToSeq, maxRooms,
            m => _options.Value.RoomOf(m.Subject, live: false) is { } of ? _reader.Create(of, m.Seq, 0, m.Timestamp, m.Headers, m.Data) : null,
            cancellationToken);

    /// <summary>The room's latest <paramref name="limit"/> messages, oldest first.</summary>
    public async ValueTask<IReadOnlyList<RoomMessage>> ReadLatestAsync(string room, int limit, CancellationToken cancellationToken)
    {
        if (limit == 1)
        {
            // The common "current value" case: one direct get, no consumer.
            return await GetLastAsync(room, cancellationToken) is { } last ? [last] : [];
        }

        // JetStream cannot read a subject backwards; read what is kept and keep the tail.
        var tail = new Queue<RoomMessage>(limit);
        await foreach (var message in ReadAsync(room, 0, null, cancellationToken))
        {
            if (tail.Count == limit)
            {
                tail.Dequeue();
            }

            tail.Enqueue(message);
        }

        return [.. tail];
    }
}
