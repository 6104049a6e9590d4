using System.Buffers;
using System.Globalization;
using System.Text;
using MessagePack;

namespace Bridge.Tests.Infrastructure;

/// <summary>
/// A frame as a tree that can hold what a well-behaved serializer refuses to write: strings whose bytes are not
/// UTF-8, JSON escapes of lone surrogates, numbers beyond every integer type. It is written as JSON bytes or as a
/// MessagePack map, so the same bad input can be sent on both subprotocols.
/// </summary>
public abstract record RawValue
{
    /// <summary>A string whose bytes are written as they are (they need not be valid UTF-8).</summary>
    public sealed record Text(byte[] Bytes) : RawValue
    {
        public override string ToString() => $"\"{Describe(Bytes)}\"";
    }

    /// <summary>A value written as its JSON text, and as <see cref="MsgPack"/> in MessagePack.</summary>
    public sealed record Literal(string Json, RawValue MsgPack) : RawValue
    {
        public override string ToString() => Json.Length <= 40 ? Json : Json[..40] + "…";
    }

    public sealed record Whole(long Value) : RawValue
    {
        public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
    }

    public sealed record Natural(ulong Value) : RawValue
    {
        public override string ToString() => Value.ToString(CultureInfo.InvariantCulture);
    }

    public sealed record Real(double Value) : RawValue
    {
        public override string ToString() => Value.ToString("R", CultureInfo.InvariantCulture);
    }

    public sealed record Bool(bool Value) : RawValue
    {
        public override string ToString() => Value ? "true" : "false";
    }

    public sealed record Nil : RawValue
    {
        public override string ToString() => "null";
    }

    public sealed record List(RawValue[] Items) : RawValue
    {
        public override string ToString() => Items.Length <= 4 ? $"[{string.Join(',', Items.Select(i => i.ToString()))}]" : $"[{Items.Length} items]";
    }

    /// <summary>A JSON object / MessagePack map; its keys are strings whose bytes need not be UTF-8 either.</summary>
    public sealed record Map((RawValue Key, RawValue Value)[] Entries) : RawValue
    {
        public override string ToString() => $"{{{string.Join(',', Entries.Select(e => $"{e.Key}:{e.Value}"))}}}";
    }

    private static string Describe(byte[] bytes)
    {
        var text = string.Concat(bytes.Take(24).Select(b => b is >= 0x20 and < 0x7f && b != '"' ? ((char)b).ToString() : $"<{b:X2}>"));
        return bytes.Length > 24 ? $"{text}…({bytes.Length} bytes)" : text;
    }

    /// <summary>
    /// True when some string of the value (a key included) is not Unicode text: its bytes are not UTF-8, or it is a
    /// <see cref="Literal"/> whose MessagePack form is such a string (an escaped lone surrogate in JSON).
    /// </summary>
    public bool HasInvalidText() => this switch
    {
        Text t => !System.Text.Unicode.Utf8.IsValid(t.Bytes),
        Literal l => l.MsgPack is Text && l.MsgPack.HasInvalidText(),
        List list => list.Items.Any(i => i.HasInvalidText()),
        Map map => map.Entries.Any(e => e.Key.HasInvalidText() || e.Value.HasInvalidText()),
        _ => false,
    };

    /// <summary>The value as JSON text bytes. String bytes are copied as they are, with only the characters JSON must escape escaped.</summary>
    public byte[] ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>();
        WriteJson(buffer);
        return buffer.WrittenSpan.ToArray();
    }

    /// <summary>The value as MessagePack. String bytes are written as a <c>str</c> as they are.</summary>
    public byte[] ToMsgPack()
    {
        var buffer = new ArrayBufferWriter<byte>();
        var writer = new MessagePackWriter(buffer);
        WriteMsgPack(ref writer);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private void WriteJson(ArrayBufferWriter<byte> output)
    {
        switch (this)
        {
            case Text t:
                WriteJsonString(output, t.Bytes);
                break;
            case Literal l:
                output.Write(Encoding.UTF8.GetBytes(l.Json));
                break;
            case Whole i:
                output.Write(Encoding.ASCII.GetBytes(i.Value.ToString(CultureInfo.InvariantCulture)));
                break;
            case Natural u:
                output.Write(Encoding.ASCII.GetBytes(u.Value.ToString(CultureInfo.InvariantCulture)));
                break;
            case Real f:
                output.Write(Encoding.ASCII.GetBytes(f.Value.ToString("R", CultureInfo.InvariantCulture)));
                break;
            case Bool b:
                output.Write(b.Value ? "true"u8 : "false"u8);
                break;
            case Nil:
                output.Write("null"u8);
                break;
            case List list:
                output.Write("["u8);
                for (var i = 0; i < list.Items.Length; i++)
                {
                    if (i > 0)
                    {
                        output.Write(","u8);
                    }

                    list.Items[i].WriteJson(output);
                }

                output.Write("]"u8);
                break;
            case Map map:
                output.Write("{"u8);
                for (var i = 0; i < map.Entries.Length; i++)
                {
                    if (i > 0)
                    {
                        output.Write(","u8);
                    }

                    map.Entries[i].Key.WriteJson(output); // a Text, or a Literal string
                    output.Write(":"u8);
                    map.Entries[i].Value.WriteJson(output);
                }

                output.Write("}"u8);
                break;
        }
    }

    private static void WriteJsonString(ArrayBufferWriter<byte> output, byte[] bytes)
    {
        output.Write("\""u8);
        foreach (var b in bytes)
        {
            if (b == '"' || b == '\\')
            {
                output.Write([(byte)'\\', b]);
            }
            else if (b < 0x20)
            {
                output.Write(Encoding.ASCII.GetBytes($"\\u{b:x4}"));
            }
            else
            {
                output.Write([b]);
            }
        }

        output.Write("\""u8);
    }

    private void WriteMsgPack(ref MessagePackWriter writer)
    {
        switch (this)
        {
            case Text t:
                writer.WriteString(t.Bytes);
                break;
            case Literal l:
                l.MsgPack.WriteMsgPack(ref writer);
                break;
            case Whole i:
                writer.Write(i.Value);
                break;
            case Natural u:
                writer.Write(u.Value);
                break;
            case Real f:
                writer.Write(f.Value);
                break;
            case Bool b:
                writer.Write(b.Value);
                break;
            case Nil:
                writer.WriteNil();
                break;
            case List list:
                writer.WriteArrayHeader(list.Items.Length);
                foreach (var item in list.Items)
                {
                    item.WriteMsgPack(ref writer);
                }

                break;
            case Map map:
                writer.WriteMapHeader(map.Entries.Length);
                foreach (var (key, value) in map.Entries)
                {
                    key.WriteMsgPack(ref writer); // a Text, or a Literal whose MessagePack form is a Text
                    value.WriteMsgPack(ref writer);
                }

                break;
        }
    }
}

/// <summary>Short constructors for <see cref="RawValue"/> trees.</summary>
public static class Raw
{
    /// <summary>The byte sequences that are not UTF-8, each inside otherwise valid text.</summary>
    public static readonly byte[][] InvalidUtf8 =
    [
        [0xFF],                   // never valid
        [0xC0, 0xAF],             // overlong '/'
        [0xED, 0xA0, 0x80],       // a UTF-16 surrogate (U+D800) encoded as UTF-8 (CESU-8)
        [0xE2, 0x82],             // truncated three-byte sequence
        [0x80],                   // lone continuation byte
        [0xF4, 0x90, 0x80, 0x80], // beyond U+10FFFF
    ];

    public static RawValue S(string text) => new RawValue.Text(Encoding.UTF8.GetBytes(text));

    /// <summary>A string of <paramref name="prefix"/>, then <paramref name="bad"/> bytes, then <paramref name="suffix"/>.</summary>
    public static RawValue Bad(string prefix, byte[] bad, string suffix = "") =>
        new RawValue.Text([.. Encoding.UTF8.GetBytes(prefix), .. bad, .. Encoding.UTF8.GetBytes(suffix)]);

    /// <summary>
    /// A JSON string holding the escape of a lone surrogate (valid UTF-8 text, but no Unicode string); in MessagePack
    /// the closest thing, the surrogate's bytes (invalid UTF-8).
    /// </summary>
    public static RawValue LoneSurrogate(string prefix) =>
        new RawValue.Literal($"\"{prefix}\\ud800\"", Bad(prefix, [0xED, 0xA0, 0x80]));

    public static RawValue N(long value) => new RawValue.Whole(value);

    public static RawValue U(ulong value) => new RawValue.Natural(value);

    public static RawValue F(double value) => new RawValue.Real(value);

    public static RawValue B(bool value) => new RawValue.Bool(value);

    public static readonly RawValue Null = new RawValue.Nil();

    public static RawValue L(params RawValue[] items) => new RawValue.List(items);

    public static RawValue M(params (string Key, RawValue Value)[] entries) =>
        new RawValue.Map([.. entries.Select(e => (S(e.Key), e.Value))]);

    /// <summary>A map with one entry whose key is <paramref name="key"/> (e.g. from <see cref="Bad"/>).</summary>
    public static RawValue MK(RawValue key, RawValue value) => new RawValue.Map([(key, value)]);

    /// <summary>JSON text for a number no integer type holds; in MessagePack the largest float64.</summary>
    public static readonly RawValue HugeNumber = new RawValue.Literal("1e300", F(double.MaxValue));

    /// <summary>JSON text for a number beyond float64's range (MessagePack cannot say it: use only with JSON).</summary>
    public static readonly RawValue BeyondFloat64 = new RawValue.Literal("-1e400", F(double.MinValue));
}
