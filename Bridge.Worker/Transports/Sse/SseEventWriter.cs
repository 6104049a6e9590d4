using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using Bridge.Worker.Connections;
using Bridge.Worker.Protocol;

namespace Bridge.Worker.Transports.Sse;

/// <summary>
/// Writes queued frames as Server-Sent Events (docs/protocol.md §6) into a response's <see cref="PipeWriter"/>, and owns
/// the stream's room positions its event ids are made from. Events are written into one region of the writer at a time
/// and the region is advanced once, when the next event does not fit or before a flush (<see cref="Commit"/>): each
/// <see cref="PipeWriter.GetMemory"/> and <see cref="PipeWriter.Advance"/> on Kestrel's response takes its lock.
/// </summary>
internal sealed class SseEventWriter(PipeWriter writer, List<string> rooms, Dictionary<string, ulong> positions)
{
    /// <summary>Marks a queued heartbeat: its bytes are an SSE comment, written as they are.</summary>
    public const string HeartbeatType = ":";

    // "id: " + 20 digits (ulong.MaxValue) + "\n".
    private const int SeqIdLineMax = 4 + 20 + 1;

    private Memory<byte> _region;
    private int _used;

    // The last event type's "event: <type>\ndata: ", reused while the type repeats (a replay is one type).
    private string? _type;
    private byte[] _typeLines = [];

    /// <summary>Bytes written since the last <see cref="Commit"/>, advanced or not.</summary>
    public int Unflushed { get; private set; }

    /// <summary>
    /// Writes <paramref name="frame"/>: a heartbeat's comment as it is, any other frame as <c>[id: &lt;cursor&gt;\n]event:
    /// &lt;type&gt;\ndata: &lt;envelope&gt;\n\n</c>, the id (a frame that advances a room) after moving that room to the frame's seq.
    /// </summary>
    public void Write(in OutboundFrame frame)
    {
        if (frame.Type == HeartbeatType)
        {
            Append(frame.Bytes);
            return;
        }

        string? cursor = null;
        var idMax = 0;
        if (frame.AdvancesPosition)
        {
            positions[frame.Room!] = frame.Seq;
            if (rooms.Count == 1 && frame.Room == rooms[0])
            {
                idMax = SeqIdLineMax;
            }
            else
            {
                // Several rooms: the cursor over all of them (Cursor.Format), room names being ASCII like the types.
                cursor = Cursor.Format(rooms, positions);
                idMax = 4 + cursor.Length + 1;
            }
        }

        var typeLines = TypeLines(frame.Type);
        var span = Reserve(idMax + typeLines.Length + frame.Bytes.Length + 2);
        var at = 0;
        if (idMax > 0)
        {
            "id: "u8.CopyTo(span);
            at = 4;
            if (cursor is null)
            {
                frame.Seq.TryFormat(span[at..], out var digits, default, CultureInfo.InvariantCulture);
                at += digits;
            }
            else
            {
                at += Encoding.ASCII.GetBytes(cursor, span[at..]);
            }

            span[at++] = (byte)'\n';
        }

        typeLines.CopyTo(span[at..]);
        at += typeLines.Length;
        // Envelopes are single-line JSON (payloads are compacted when read off the stream).
        frame.Bytes.CopyTo(span[at..]);
        at += frame.Bytes.Length;
        span[at++] = (byte)'\n';
        span[at++] = (byte)'\n';
        Used(at);
    }

    /// <summary>Advances the writer past every event written so far: call before flushing it.</summary>
    public void Commit()
    {
        if (_used > 0)
        {
            writer.Advance(_used);
        }

        _region = default;
        _used = 0;
        Unflushed = 0;
    }

    private void Append(ReadOnlySpan<byte> bytes)
    {
        bytes.CopyTo(Reserve(bytes.Length));
        Used(bytes.Length);
    }

    /// <summary>At least <paramref name="size"/> bytes of the region, from the first unused one.</summary>
    private Span<byte> Reserve(int size)
    {
        if (_region.Length - _used < size)
        {
            if (_used > 0)
            {
                writer.Advance(_used);
            }

            _region = writer.GetMemory(size);
            _used = 0;
        }

        return _region.Span[_used..];
    }

    private void Used(int count)
    {
        _used += count;
        Unflushed += count;
    }

    private byte[] TypeLines(string type)
    {
        if (!ReferenceEquals(type, _type) && type != _type)
        {
            var lines = new byte[7 + type.Length + 7];
            "event: "u8.CopyTo(lines);
            Encoding.ASCII.GetBytes(type, lines.AsSpan(7));
            "\ndata: "u8.CopyTo(lines.AsSpan(7 + type.Length));
            _typeLines = lines;
            _type = type;
        }

        return _typeLines;
    }
}
