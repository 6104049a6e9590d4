using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Worker.Connections;

namespace Bridge.Tests.Infrastructure;

/// <summary>What a member that fell behind beyond retention received: the burst's messages and its <c>room.joined</c> notices.</summary>
internal static class Truncations
{
    /// <summary>
    /// <paramref name="paused"/> (a WebSocket client not reading) joins <paramref name="room"/> live, falls behind while
    /// <paramref name="count"/> messages of 4 KiB are published, then reads again: the burst's seqs, and what it
    /// received up to the last of them.
    /// </summary>
    public static async Task<(List<ulong> Seqs, List<Seen> Seen)> PauseThroughBurstAsync(
        WorkerHost worker, NatsServerProcess nats, TestClient paused, string room, int count, TimeSpan timeout)
    {
        await paused.JoinAsync(room);
        await Eventually.TrueAsync(() => worker.Get<ConnectionTracker>().Sessions.Count(s => s.Rooms.Find(room)?.State == MemberState.Live) == 1);
        var publishing = Bursts.PublishAsync(nats, room, count, bodyBytes: 4096);
        await Eventually.TrueAsync(() => worker.Get<RoomReader>().Behind >= 1, timeout);
        var seqs = await publishing;
        paused.StartReading();
        return (seqs, await ReadUpToAsync(paused, room, seqs[^1], timeout));
    }

    /// <summary>
    /// What a member behind beyond retention must have received: the burst in stream order, each once; all of the last
    /// <paramref name="kept"/> (what the stream keeps); not all of it; and a <c>room.joined</c> with <c>truncated</c>
    /// after every gap.
    /// </summary>
    public static void AssertKeptInOrderAndEveryGapNoticed(List<Seen> seen, List<ulong> seqs, int kept)
    {
        var received = seen.Where(s => s.Type == Bursts.Type).Select(s => s.Seq).ToList();
        Assert.True(received.Zip(received.Skip(1)).All(p => p.First < p.Second), "in stream order, each once");
        Assert.Subset(received.ToHashSet(), seqs.TakeLast(kept).ToHashSet());
        Assert.True(received.Count < seqs.Count, "retention dropped some of what it missed");
        Assert.Contains(seen, s => s.Truncated);
        AssertEveryGapIsFollowedByNotice(seen, seqs);
    }

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
    private static void AssertEveryGapIsFollowedByNotice(List<Seen> seen, List<ulong> seqs)
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
