using System.Buffers;
using System.Buffers.Text;
using System.Globalization;
using System.Text;
using System.Threading.Channels;
using NATS.Client.Core;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// A probe of nats-server's batch direct gets (issue 14, twelfth pass; report only): reads one subject of a stream by
/// <c>$JS.API.DIRECT.GET.&lt;stream&gt;</c> requests of <c>{"seq":S,"next_by_subj":subject,"batch":N}</c> (nats-server
/// 2.11+), each reply read on NATS.Net's read loop from its bytes (no <c>NatsMsg</c>, no <c>NatsHeaders</c>: only the
/// <c>Nats-Sequence</c> header is found), so the client costs little and the server's CPU per message is what is
/// compared. The next request goes out as soon as the read loop has the last message of a full batch (before that
/// batch's <c>204 EOB</c>): one request in flight, the server never waiting for the reader to take a batch.
/// </summary>
internal sealed class DirectGetProbe : NatsSubBase
{
    private static readonly byte[] SequenceHeader = "\r\nNats-Sequence: "u8.ToArray();

    private readonly Channel<(long Request, int Received, bool Full)> _ends = Channel.CreateUnbounded<(long, int, bool)>();
    private readonly string _inbox;
    private long _request;
    private int _received;
    private ulong _lastSeq;
    private int _batch;

    private DirectGetProbe(NatsConnection connection, string inbox)
        : base(connection, connection.SubscriptionManager, inbox + ".*", queueGroup: null, opts: null)
    {
        _inbox = inbox;
    }

    /// <summary>
    /// Reads <paramref name="messages"/> messages of <paramref name="subject"/> in <paramref name="stream"/> from its start
    /// in batches of <paramref name="batch"/>; returns how many arrived (fewer if the subject has fewer).
    /// </summary>
    public static async Task<long> ReadAsync(NatsConnection connection, string stream, string subject, int messages, int batch, CancellationToken cancellationToken)
    {
        var probe = new DirectGetProbe(connection, "_INBOX." + Guid.NewGuid().ToString("N"));
        await connection.AddSubAsync(probe, cancellationToken);
        await using (probe)
        {
            long received = 0;
            ulong next = 1;
            while (received < messages)
            {
                var request = Volatile.Read(ref probe._request) + 1;
                Volatile.Write(ref probe._batch, batch);
                Volatile.Write(ref probe._received, 0);
                Volatile.Write(ref probe._request, request);
                await connection.PublishAsync(
                    $"$JS.API.DIRECT.GET.{stream}",
                    Encoding.ASCII.GetBytes($$"""{"seq":{{next}},"next_by_subj":"{{subject}}","batch":{{batch}}}"""),
                    replyTo: probe._inbox + "." + request.ToString(CultureInfo.InvariantCulture),
                    cancellationToken: cancellationToken);
                var (ended, got, full) = await probe._ends.Reader.ReadAsync(cancellationToken);
                while (ended != request)
                {
                    // The end of batch of the request before, read while the read loop still saw it as current.
                    (ended, got, full) = await probe._ends.Reader.ReadAsync(cancellationToken);
                }

                received += got;
                if (!full)
                {
                    break;
                }

                next = Volatile.Read(ref probe._lastSeq) + 1;
            }

            return received;
        }
    }

    protected override ValueTask ReceiveInternalAsync(string subject, string? replyTo, ReadOnlySequence<byte>? headersBuffer, ReadOnlySequence<byte> payloadBuffer)
    {
        var request = Volatile.Read(ref _request);
        if (!subject.EndsWith("." + request.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal))
        {
            return ValueTask.CompletedTask; // the end of batch of the request before: its messages were all counted
        }

        var headers = headersBuffer is { } h ? (h.IsSingleSegment ? h.FirstSpan : h.ToArray()) : default;
        var firstLine = headers.IndexOf("\r\n"u8);
        if (firstLine > "NATS/1.0".Length)
        {
            // A status (204 EOB, 404): this request's end, short of a full batch.
            _ends.Writer.TryWrite((request, _received, false));
            return ValueTask.CompletedTask;
        }

        var at = headers.IndexOf(SequenceHeader);
        if (at < 0 || !Utf8Parser.TryParse(headers[(at + SequenceHeader.Length)..], out ulong seq, out _))
        {
            _ends.Writer.TryWrite((request, _received, false));
            return ValueTask.CompletedTask;
        }

        _lastSeq = seq;
        if (++_received == _batch)
        {
            _ends.Writer.TryWrite((request, _received, true));
        }

        return ValueTask.CompletedTask;
    }

    protected override void TryComplete() => _ends.Writer.TryComplete();
}
