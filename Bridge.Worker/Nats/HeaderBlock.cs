using System.Buffers;
using System.Buffers.Text;
using System.Text;

namespace Bridge.Worker.Nats;

/// <summary>
/// What the Bridge reads from one NATS header block (<c>NATS/1.0[ code[ text]]\r\n</c>, then <c>Key: value\r\n</c>
/// lines): its status code and the first value of each Bridge header, read straight from the bytes NATS.Net's read
/// loop hands over, with no <c>NatsHeaders</c> dictionary (a replay's profile put building one per message among the
/// largest shares of the worker's CPU; docs/benchmarks.md, "Replay read without NatsMsg").
/// </summary>
/// <remarks>
/// Read as NATS.Net's <c>NatsHeaderParser</c> reads it: keys compared ignoring case, the first of repeated keys kept,
/// spaces and tabs around a value trimmed, bytes decoded with the connection's header encoding. Where that parser
/// throws (no version line, a line without a colon, a key with a space, a block not ending in CRLF), this never does:
/// the lines it can read are kept and <see cref="Malformed"/> says that some were not.
/// </remarks>
/// <param name="Status">The status code of the version line (404, 408, …); 0 without one.</param>
/// <param name="Type">The first <c>Bridge-Type</c> value, or null.</param>
/// <param name="From">The first <c>Bridge-From</c> value, or null.</param>
/// <param name="Id">The first <c>Bridge-Id</c> value, or null.</param>
/// <param name="ContentType">The first <c>Content-Type</c> value, or null.</param>
/// <param name="Malformed">Some of the block could not be read (lines skipped, or no version line at all).</param>
internal readonly record struct HeaderBlock(int Status, string? Type, string? From, string? Id, string? ContentType, bool Malformed)
{
    // A header block larger than this is copied into a pooled buffer when NATS.Net hands it over in pieces.
    private const int StackLimit = 1024;

    private static ReadOnlySpan<byte> Version => "NATS/1.0"u8;

    /// <summary>
    /// Reads a message's header block; no block at all (a message without headers) reads as empty. A <c>Bridge-Type</c>
    /// value whose bytes spell <paramref name="knownType"/> (ASCII, decoded by an ASCII-compatible encoding) is that very
    /// string, not a new one: a reader of one room's messages passes the last type it read, so a run of messages of one
    /// type makes (and validates, <see cref="RoomMessageReader"/>) its string once ("Replay, sixth pass (issue 14)").
    /// </summary>
    public static HeaderBlock Read(in ReadOnlySequence<byte>? block, Encoding encoding, string? knownType = null)
    {
        if (block is not { } bytes || bytes.IsEmpty)
        {
            return default;
        }

        if (bytes.IsSingleSegment)
        {
            return Read(bytes.FirstSpan, encoding, knownType);
        }

        var length = checked((int)bytes.Length);
        byte[]? rented = null;
        var span = length <= StackLimit ? stackalloc byte[length] : (rented = ArrayPool<byte>.Shared.Rent(length)).AsSpan(0, length);
        try
        {
            bytes.CopyTo(span);
            return Read(span, encoding, knownType);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Reads a header block from contiguous bytes.</summary>
    private static HeaderBlock Read(ReadOnlySpan<byte> block, Encoding encoding, string? knownType)
    {
        var lineEnd = block.IndexOf("\r\n"u8);
        var first = lineEnd < 0 ? block : block[..lineEnd];
        if (!first.StartsWith(Version) || (first.Length > Version.Length && first[Version.Length] != (byte)' '))
        {
            return new HeaderBlock(0, null, null, null, null, Malformed: true);
        }

        var malformed = lineEnd < 0;
        var status = 0;
        var rest = first[Version.Length..].TrimStart((byte)' ');
        if (!rest.IsEmpty)
        {
            var codeEnd = rest.IndexOf((byte)' ');
            if (!Utf8Parser.TryParse(codeEnd < 0 ? rest : rest[..codeEnd], out status, out var consumed) || consumed != (codeEnd < 0 ? rest.Length : codeEnd))
            {
                status = 0;
                malformed = true;
            }
        }

        string? type = null, from = null, id = null, contentType = null;
        var lines = lineEnd < 0 ? [] : block[(lineEnd + 2)..];
        while (!lines.IsEmpty)
        {
            lineEnd = lines.IndexOf("\r\n"u8);
            if (lineEnd < 0)
            {
                malformed = true; // a last line without its CRLF
                break;
            }

            var line = lines[..lineEnd];
            lines = lines[(lineEnd + 2)..];
            if (line.IsEmpty)
            {
                continue;
            }

            var nameEnd = line.IndexOfAny((byte)':', (byte)' ', (byte)'\t');
            if (nameEnd <= 0 || line[nameEnd] != (byte)':')
            {
                malformed = true;
                continue;
            }

            var name = line[..nameEnd];
            var value = line[(nameEnd + 1)..];
            if (Ascii.EqualsIgnoreCase(name, "Bridge-Type"u8))
            {
                type ??= Spells(value, knownType, encoding) ? knownType : Decode(value, encoding);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Bridge-From"u8))
            {
                from ??= Decode(value, encoding);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Bridge-Id"u8))
            {
                id ??= Decode(value, encoding);
            }
            else if (Ascii.EqualsIgnoreCase(name, "Content-Type"u8))
            {
                contentType ??= Decode(value, encoding);
            }
        }

        return new HeaderBlock(status, type, from, id, contentType, malformed);
    }

    // Whether a value's bytes decode to exactly known: ASCII bytes equal to its characters, in an encoding that decodes
    // ASCII as ASCII (UTF-8, ASCII, Latin-1: NATS.Net's choices).
    private static bool Spells(ReadOnlySpan<byte> value, string? known, Encoding encoding) =>
        known is not null && encoding.CodePage is 65001 or 20127 or 28591 && Ascii.Equals(value.Trim(" \t"u8), known);

    // The first of repeated keys is kept, as NatsHeaders' first value; spaces and tabs around it are not part of it.
    private static string Decode(ReadOnlySpan<byte> value, Encoding encoding) => encoding.GetString(value.Trim(" \t"u8));
}

/// <summary>
/// Reads the header blocks of one reader's deliveries in turn (a history cursor's, on NATS.Net's read loop): a block
/// with the very bytes of the last one read reads as that one did, without reading it again, and otherwise as
/// <see cref="HeaderBlock.Read(in ReadOnlySequence{byte}?, Encoding, string?)"/> with the last type known. A room's
/// messages mostly carry the same few headers (a type, no id), so a replay reads each distinct block once
/// ("Replay, fifteenth pass (issue 14): the read side", docs/benchmarks.md). One caller at a time.
/// </summary>
internal sealed class HeaderBlockReader(Encoding encoding)
{
    // Blocks longer than this are read each time (not kept).
    private const int KeptBytes = 256;

    private readonly byte[] _last = new byte[KeptBytes];
    private int _lastLength = -1;
    private HeaderBlock _block;

    public HeaderBlock Read(in ReadOnlySequence<byte>? block)
    {
        if (block is not { IsEmpty: false } bytes)
        {
            return default;
        }

        if (_lastLength >= 0 && bytes.IsSingleSegment && bytes.FirstSpan.SequenceEqual(_last.AsSpan(0, _lastLength)))
        {
            return _block;
        }

        _block = HeaderBlock.Read(bytes, encoding, _block.Type);
        if (bytes.Length <= KeptBytes)
        {
            bytes.CopyTo(_last);
            _lastLength = (int)bytes.Length;
        }
        else
        {
            _lastLength = -1;
        }

        return _block;
    }
}
