using Bridge.Contracts;

namespace Bridge.Worker.Protocol;

/// <summary>The envelope keys a client frame's decoder reads, one bit each (docs/protocol.md §3).</summary>
[Flags]
internal enum EnvelopeKey
{
    /// <summary>Any other key: its value is skipped (unknown keys are ignored, §2), but not its name twice.</summary>
    None = 0,
    Type = 1,
    Room = 2,
    Id = 4,
    Enc = 8,
    Payload = 16,
}

/// <summary>
/// The keys a decoder has read in one envelope, as a bit mask on the stack: refusing a key twice costs no allocation.
/// Both codecs ask it, so JSON and MessagePack refuse the same repeats with the same message.
/// </summary>
internal static class EnvelopeKeySet
{
    /// <summary>
    /// Adds <paramref name="key"/> to <paramref name="seen"/> (an unknown key, <see cref="EnvelopeKey.None"/>, is not
    /// counted); false when it was there already, with the <c>bad_frame</c> answer (<paramref name="id"/>: the id read
    /// so far, its <c>ref</c>).
    /// </summary>
    public static bool TryAdd(ref EnvelopeKey seen, EnvelopeKey key, string? id, out DecodeError error)
    {
        if ((seen & key) != 0)
        {
            error = new DecodeError(DuplicateMessage(key), id);
            return false;
        }

        seen |= key;
        error = default;
        return true;
    }

    /// <summary>The <c>bad_frame</c> message for an unknown key given twice (its name is not echoed).</summary>
    public const string UnknownDuplicateMessage = "duplicate name: an unknown envelope key appears twice";

    /// <summary>
    /// Adds the unknown key <paramref name="name"/> (as read: JSON escapes undone) to <paramref name="unknown"/>,
    /// made on the first unknown key only, so a frame of known keys allocates nothing; false when it was there
    /// already. Refused like a known key twice, so that a key a later version reads was never accepted twice.
    /// </summary>
    public static bool TryAddUnknown(ref HashSet<string>? unknown, string name, string? id, out DecodeError error)
    {
        // Ordinal with .NET's per-process randomized string hashing: a frame full of names cannot make it quadratic.
        unknown ??= new HashSet<string>(StringComparer.Ordinal);
        if (!unknown.Add(name))
        {
            error = new DecodeError(UnknownDuplicateMessage, id);
            return false;
        }

        error = default;
        return true;
    }

    /// <summary>The <c>bad_frame</c> message for <paramref name="key"/> given twice in one envelope.</summary>
    public static string DuplicateMessage(EnvelopeKey key) => key switch
    {
        EnvelopeKey.Type => "duplicate name: envelope key 'type' appears twice",
        EnvelopeKey.Room => "duplicate name: envelope key 'room' appears twice",
        EnvelopeKey.Id => "duplicate name: envelope key 'id' appears twice",
        EnvelopeKey.Enc => "duplicate name: envelope key 'enc' appears twice",
        _ => "duplicate name: envelope key 'payload' appears twice",
    };

    /// <summary>The key named <paramref name="name"/> (MessagePack has no <c>enc</c>: there it is an unknown key).</summary>
    public static EnvelopeKey MessagePackKeyOf(string name) => name switch
    {
        EnvelopeKeys.Type => EnvelopeKey.Type,
        EnvelopeKeys.Room => EnvelopeKey.Room,
        EnvelopeKeys.Id => EnvelopeKey.Id,
        EnvelopeKeys.Payload => EnvelopeKey.Payload,
        _ => EnvelopeKey.None,
    };
}
