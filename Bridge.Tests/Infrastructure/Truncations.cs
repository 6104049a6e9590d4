using Bridge.Contracts;
using Bridge.Testing;

namespace Bridge.Tests.Infrastructure;

/// <summary>What a member that fell behind beyond retention received: the burst's frames, read up to its last message.</summary>
internal static class Truncations
{
    /// <summary>Frames of <paramref name="room"/> the client receives, up to the burst message <paramref name="lastSeq"/>.</summary>
    public static async Task<List<Frame>> ReadUpToAsync(TestClient client, string room, ulong lastSeq, TimeSpan timeout)
    {
        var frames = new List<Frame>();
        while (frames.LastOrDefault()?.Seq != lastSeq || frames.Last().Type != Bursts.Type)
        {
            frames.Add(await client.WaitForAsync(f => f.Room == room, timeout));
        }

        return frames;
    }

    /// <summary>
    /// No silent loss: after every gap in <paramref name="frames"/> (burst messages of <paramref name="seqs"/> it never
    /// got), a <c>room.joined</c> with <c>truncated</c> follows.
    /// </summary>
    public static void AssertEveryGapIsFollowedByNotice(List<Frame> frames, List<ulong> seqs)
    {
        var index = seqs.Select((seq, i) => (seq, i)).ToDictionary(p => p.seq, p => p.i);
        var previous = -1;
        for (var at = 0; at < frames.Count; at++)
        {
            if (frames[at].Type != Bursts.Type)
            {
                continue;
            }

            var i = index[frames[at].Seq];
            if (i > previous + 1)
            {
                Assert.True(frames.Skip(at).Any(IsTruncated),
                    $"a gap before {frames[at].Seq} (index {i}, previous {previous}) with no truncated notice after it; frames: " +
                    string.Join(" ", frames.Select(f => f.Type == MessageTypes.RoomJoined ? $"[joined {f.Seq} {f.Payload!["truncated"]}]" : $"{index[f.Seq]}")));
            }

            previous = i;
        }
    }

    public static bool IsTruncated(Frame frame) => frame.Type == MessageTypes.RoomJoined && frame.Payload!["truncated"]!.GetValue<bool>();
}
