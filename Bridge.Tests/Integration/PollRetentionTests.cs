using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Integration;

/// <summary>
/// A long-poll resuming from beyond retention with a kept backlog longer than one page (breaker-s14 L1): the room is
/// listed in <c>truncated</c> on the page where the hole starts, the first, and the pages after it carry what is kept,
/// each message once, in order, without <c>truncated</c>. A resume inside retention is never listed, however many pages
/// its backlog takes. Its own nats-server: the stream here keeps only 100 messages per room, and a poll answers at most
/// 25 messages.
/// </summary>
public sealed class PollRetentionTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private const int Kept = 100;
    private const int PageSize = 25;
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(60) };

    private Task<WorkerHost> StartWorkerAsync() => WorkerHost.StartAsync(
        nats.Server,
        ("Bridge:Nats:MaxMessagesPerRoom", Kept.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ("Bridge:Connections:PollMaxMessages", PageSize.ToString(System.Globalization.CultureInfo.InvariantCulture)),
        ("Bridge:Connections:PollTimeout", "00:00:05"));

    [Fact]
    public async Task A_poll_from_beyond_retention_lists_the_room_as_truncated_on_its_first_page_then_pages_through_what_is_kept()
    {
        await using var worker = await StartWorkerAsync();
        var room = Names.Room("gone");
        // 130 messages, 100 kept: the cursor's message (the first) and the 29 after it are gone.
        var seqs = await Bursts.PublishAsync(nats.Server, room, Kept + 30, bodyBytes: 64);
        var kept = seqs[^Kept..];

        var pages = await WalkAsync(worker, [room], $"{room}={seqs[0]}", new() { [room] = seqs[^1] });

        Assert.True(pages.Count >= Kept / PageSize, $"{pages.Count} pages: the kept backlog must take several");
        Assert.All(pages, p => Assert.InRange(p.Messages.Count, 0, PageSize));
        Assert.Equal(kept[0], pages[0].Messages[0].Seq); // the first page starts where the hole ends...
        Assert.Equal([room], pages[0].Truncated); // ...and says so
        Assert.All(pages.Skip(1), p => Assert.Empty(p.Truncated));
        Assert.Equal(kept, pages.SelectMany(p => p.Messages).Select(m => m.Seq)); // every kept message once, in order
    }

    [Fact]
    public async Task A_poll_from_beyond_retention_whose_kept_backlog_fits_one_page_lists_the_room_once()
    {
        // A page as long as what is kept: the replay ends in the first poll, whose room.joined says truncated as well.
        await using var worker = await WorkerHost.StartAsync(
            nats.Server,
            ("Bridge:Nats:MaxMessagesPerRoom", Kept.ToString(System.Globalization.CultureInfo.InvariantCulture)),
            ("Bridge:Connections:PollMaxMessages", "500"));
        var room = Names.Room("gone");
        var seqs = await Bursts.PublishAsync(nats.Server, room, Kept + 30, bodyBytes: 64);

        var pages = await WalkAsync(worker, [room], $"{room}={seqs[0]}", new() { [room] = seqs[^1] });

        var page = Assert.Single(pages);
        Assert.Equal([room], page.Truncated);
        Assert.Equal(seqs[^Kept..], page.Messages.Select(m => m.Seq));
    }

    [Fact]
    public async Task A_poll_from_inside_retention_with_a_backlog_of_several_pages_is_never_listed_as_truncated()
    {
        await using var worker = await StartWorkerAsync();
        var room = Names.Room("kept");
        var seqs = await Bursts.PublishAsync(nats.Server, room, Kept + 30, bodyBytes: 64);
        // The oldest kept message: everything after it (99 messages, four pages) is stored.
        var since = seqs[^Kept];

        var pages = await WalkAsync(worker, [room], $"{room}={since}", new() { [room] = seqs[^1] });

        Assert.True(pages.Count >= 4, $"{pages.Count} pages");
        Assert.All(pages, p => Assert.Empty(p.Truncated));
        Assert.Equal(seqs[^(Kept - 1)..], pages.SelectMany(p => p.Messages).Select(m => m.Seq));
    }

    [Fact]
    public async Task A_poll_of_several_rooms_lists_only_the_room_resumed_from_beyond_retention_and_only_on_its_first_page()
    {
        await using var worker = await StartWorkerAsync();
        var gone = Names.Room("gone");
        var kept = Names.Room("kept");
        var quiet = Names.Room("quiet");
        var goneSeqs = await Bursts.PublishAsync(nats.Server, gone, Kept + 30, bodyBytes: 64);
        var keptSeqs = await Bursts.PublishAsync(nats.Server, kept, Kept + 10, bodyBytes: 64);
        var quietSeqs = await Bursts.PublishAsync(nats.Server, quiet, 3, bodyBytes: 64);
        // gone: from its dropped first message; kept: 9 messages behind, inside retention; quiet: at its end.
        var cursor = $"{gone}={goneSeqs[0]},{kept}={keptSeqs[^10]},{quiet}={quietSeqs[^1]}";
        var rooms = new[] { gone, kept, quiet };

        var pages = await WalkAsync(worker, rooms, cursor, new() { [gone] = goneSeqs[^1], [kept] = keptSeqs[^1], [quiet] = quietSeqs[^1] });

        // kept's 9 messages leave most of the first page to gone, whose first kept message is on it.
        Assert.Equal([gone], pages[0].Truncated);
        Assert.Contains(pages[0].Messages, m => m.Room == gone && m.Seq == goneSeqs[^Kept]);
        Assert.All(pages.Skip(1), p => Assert.Empty(p.Truncated));
        var seen = pages.SelectMany(p => p.Messages).ToList();
        Assert.Equal(goneSeqs[^Kept..], seen.Where(m => m.Room == gone).Select(m => m.Seq));
        Assert.Equal(keptSeqs[^9..], seen.Where(m => m.Room == kept).Select(m => m.Seq));
        Assert.DoesNotContain(seen, m => m.Room == quiet);
    }

    /// <summary>Polls from <paramref name="cursor"/> until every room's position is its last seq: each page's messages and <c>truncated</c>.</summary>
    private static async Task<List<Page>> WalkAsync(WorkerHost worker, string[] rooms, string cursor, Dictionary<string, ulong> last)
    {
        var pages = new List<Page>();
        for (var poll = 0; poll < 40; poll++)
        {
            var answer = await Http.GetFromJsonAsync<JsonObject>(
                new Uri(worker.HttpUrl, $"/poll?rooms={string.Join(',', rooms)}&cursor={Uri.EscapeDataString(cursor)}"));
            Assert.Empty(answer!["errors"]!.AsArray());
            cursor = answer["cursor"]!.GetValue<string>();
            pages.Add(new Page(
                [.. answer["messages"]!.AsArray().Select(m => (m!["room"]!.GetValue<string>(), m["seq"]!.GetValue<ulong>()))],
                [.. answer["truncated"]!.AsArray().Select(r => r!.GetValue<string>())]));
            // One room's cursor is its bare position (protocol.md §6, the cursor format).
            var positions = rooms.Length == 1
                ? new Dictionary<string, ulong> { [rooms[0]] = ulong.Parse(cursor, System.Globalization.CultureInfo.InvariantCulture) }
                : cursor.Split(',').ToDictionary(p => p.Split('=')[0], p => ulong.Parse(p.Split('=')[1], System.Globalization.CultureInfo.InvariantCulture));
            if (last.All(l => positions.TryGetValue(l.Key, out var at) && at == l.Value))
            {
                return pages;
            }
        }

        Assert.Fail($"not caught up after 40 polls: cursor {cursor}");
        return pages;
    }

    private sealed record Page(List<(string Room, ulong Seq)> Messages, List<string> Truncated);
}
