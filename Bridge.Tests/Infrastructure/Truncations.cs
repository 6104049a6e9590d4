using Bridge.Contracts;
using Bridge.Testing;

namespace Bridge.Tests.Infrastructure;

/// <summary>What a member that fell behind beyond retention received: the burst's messages and its <c>room.joined</c> notices.</summary>
internal static class Truncations
{
    /// <summary>Frames of <paramref name="room"/> a WebSocket client receives, up to the burst message <paramref name="lastSeq"/>.</summary>
    public static async Task<List<Seen>> ReadUpToAsync(TestClient client, string room, ulong lastSeq, TimeSpan timeout)
    {
        var seen = new List<Seen>();
        while (seen.LastOrDefault() is not { Type: Bursts.Type } last || last.Seq != lastSeq)
        {
            var frame = await client.WaitForAsync(f => f.Room == room, timeout);
            seen.Add(new Seen(frame.Type ?? "", frame.Seq, frame.Type == MessageTypes.RoomJoined && frame.Payload!["truncated"]!.GetValue<bool>()));
        }

        return seen;
    }

    /// <summary>The burst's messages and <c>room.joined</c> events an SSE client receives, up to the burst message <paramref name="lastSeq"/>.</summary>
    public static async Task<List<Seen>> ReadUpToAsync(SseClient client, ulong lastSeq, TimeSpan timeout)
    {
        var seen = new List<Seen>();
        while (seen.LastOrDefault() is not { Type: Bursts.Type } last || last.Seq != lastSeq)
        {
            var e = await client.WaitForAsync(e => e.Event is Bursts.Type or MessageTypes.RoomJoined, timeout);
            var json = e.Json;
            seen.Add(new Seen(e.Event, json["seq"]!.GetValue<ulong>(), e.Event == MessageTypes.RoomJoined && json["payload"]!["truncated"]!.GetValue<bool>()));
        }

        return seen;
    }

    /// <summary>
    /// No silent loss: after every gap in <paramref name="seen"/> (burst messages of <paramref name="seqs"/> it never
    /// got), a <c>room.joined</c> with <c>truncated</c> follows.
    /// </summary>
    public static void AssertEveryGapIsFollowedByNotice(List<Seen> seen, List<ulong> seqs)
    {
        var index = seqs.Select((seq, i) => (seq, i)).ToDictionary(p => p.seq, p => p.i);
        var previous = -1;
        for (var at = 0; at < seen.Count; at++)
        {
            if (seen[at].Type != Bursts.Type)
            {
                continue;
            }

            var i = index[seen[at].Seq];
            if (i > previous + 1)
            {
                Assert.True(seen.Skip(at).Any(s => s.Truncated),
                    $"a gap before {seen[at].Seq} (index {i}, previous {previous}) with no truncated notice after it; frames: " +
                    string.Join(" ", seen.Select(s => s.Type == MessageTypes.RoomJoined ? $"[joined {s.Seq} {s.Truncated}]" : $"{index[s.Seq]}")));
            }

            previous = i;
        }
    }

    /// <summary>One message (its type and seq) or <c>room.joined</c> (its seq and whether it said <c>truncated</c>).</summary>
    internal sealed record Seen(string Type, ulong Seq, bool Truncated);
}
