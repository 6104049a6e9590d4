using System.Diagnostics;
using System.Text;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Bridge.Testing;
using Bridge.Worker.Connections;
using Bridge.Worker.Rooms;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Tests.Integration;

/// <summary>
/// Joins with <c>latest</c> (the newest message of each room first, one batched read) and <c>maxRate</c> (conflation),
/// and a pattern member that falls behind or whose live buffer drops messages (docs/protocol.md §4–§5).
/// </summary>
public sealed class LatestAndConflationTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly TimeSpan Long = TimeSpan.FromSeconds(120);

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task Latest_on_a_pattern_of_1000_rooms_sends_each_room_s_newest_message_before_room_joined_then_live(string protocol)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("dash");
        var rooms = Enumerable.Range(0, 1000).Select(i => $"{site}.d{i}").ToList();
        // Two messages per room (the second is the newest), and rooms beside the pattern.
        await Store.PublishManyAsync(nats.Server, rooms, i => $"\"old-{i}\"");
        var newest = await Store.PublishManyAsync(nats.Server, rooms, i => $"\"new-{i}\"");
        await Store.PublishAsync(nats.Server, [$"{site}x.d0"]);

        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, protocol);
        await client.SendAsync(Store.Join($"{site}.*", new() { ["latest"] = true }));
        var latest = await client.CollectAsync(1000, f => f.Type == Store.Type, Long);
        var joined = await client.NextAsync();
        Assert.Equal(MessageTypes.RoomJoined, joined.Type);
        Assert.Equal($"{site}.*", joined.Room);
        Assert.Equal(1000, joined.Payload!["latest"]!.GetValue<int>());
        Assert.Equal(newest.Select(n => (n.Room, n.Seq)).Order(), latest.Select(f => (f.Room!, f.Seq)).Order());
        Assert.All(latest, f => Assert.StartsWith("new-", f.Payload!.GetValue<string>(), StringComparison.Ordinal));
        Assert.True(joined.Seq >= newest.Max(n => n.Seq));

        var live = await Store.PublishAsync(nats.Server, [rooms[7]]);
        Assert.Equal(live[0].Seq, (await client.WaitForAsync(f => f.Type == Store.Type)).Seq);
        Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task The_maxRate_of_an_sse_query_is_read_as_a_websocket_join_reads_it_exponents_included()
    {
        // {"maxRate":1e1} joins on a WebSocket (a JSON number); the same number in a query joins too.
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        using var http = new HttpClient { BaseAddress = worker.HttpUrl, Timeout = TimeSpan.FromSeconds(30) };
        foreach (var (rate, ok) in new[] { ("1e1", true), ("2.5E-1", true), ("0.5", true), ("1e4", false), ("1e400", false), ("-1e1", false) })
        {
            var room = Names.Room("qrate");
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/sse?rooms={room}&maxRate={Uri.EscapeDataString(rate)}");
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead);
            Assert.True(ok == response.IsSuccessStatusCode, $"maxRate={rate}: {(int)response.StatusCode}");
            if (!ok)
            {
                Assert.Contains(ErrorCodes.InvalidArgument, await response.Content.ReadAsStringAsync(), StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task Latest_on_a_pattern_of_1000_rooms_over_sse_sends_each_room_s_newest_message_then_room_joined_then_live()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("sdash");
        var rooms = Enumerable.Range(0, 1000).Select(i => $"{site}.d{i}").ToList();
        await Store.PublishManyAsync(nats.Server, rooms, i => $"\"old-{i}\"");
        var newest = await Store.PublishManyAsync(nats.Server, rooms, i => $"\"new-{i}\"");

        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, $"{Uri.EscapeDataString(site + ".*")}&latest=true");
        var latest = await sse.CollectAsync(1000, e => e.Event == Store.Type, Long);
        var joined = await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        Assert.Equal(1000, joined.Json["payload"]!["latest"]!.GetValue<int>());
        Assert.Equal(newest.Select(n => (n.Room, n.Seq)).Order(), latest.Select(e => (e.Json["room"]!.GetValue<string>(), e.Json["seq"]!.GetValue<ulong>())).Order());
        Assert.All(latest, e => Assert.StartsWith("new-", e.Json["payload"]!.GetValue<string>(), StringComparison.Ordinal));

        var live = await Store.PublishAsync(nats.Server, [rooms[999]]);
        Assert.Equal(live[0].Seq, (await sse.WaitForAsync(e => e.Event == Store.Type)).Json["seq"]!.GetValue<ulong>());
    }

    [Fact]
    public async Task Latest_beyond_one_batched_read_lists_the_rooms_and_a_join_over_the_limit_is_refused_whole()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxLatestRooms", "1100"));
        await using var strict = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:MaxLatestRooms", "50"));
        var site = Names.Room("dash");
        var rooms = Enumerable.Range(0, 1100).Select(i => $"{site}.d{i}").ToList();
        var stored = await Store.PublishManyAsync(nats.Server, rooms);

        // 1,100 rooms: more than one multi_last may match (1,024), read in lists as of one stream seq.
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl, Subprotocols.MessagePack);
        await client.SendAsync(Store.Join($"{site}.>", new() { ["latest"] = true }));
        var latest = await client.CollectAsync(1100, f => f.Type == Store.Type, Long);
        Assert.Equal(stored.Select(s => s.Seq).Order(), latest.Select(f => f.Seq).Order());
        Assert.Equal(1100, (await client.WaitForAsync(f => f.Type == MessageTypes.RoomJoined)).Payload!["latest"]!.GetValue<int>());

        // Over the limit, with the listing (1,100 rooms) and with one batched read (60 rooms): refused, nothing joined.
        await using var refused = await TestClient.ConnectAsync(strict.WebSocketUrl);
        await refused.SendAsync(Store.Join($"{site}.>", new() { ["latest"] = true }, id: "too-many"));
        var error = await refused.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.RoomJoined, Long);
        Assert.Equal(ErrorCodes.TooManyRooms, error.ErrorCode);
        Assert.Equal("too-many", error.Payload!["ref"]!.GetValue<string>());

        var small = Names.Room("small");
        await Store.PublishManyAsync(nats.Server, Enumerable.Range(0, 60).Select(i => $"{small}.d{i}").ToList());
        await refused.SendAsync(Store.Join($"{small}.*", new() { ["latest"] = true }, id: "sixty"));
        Assert.Equal(ErrorCodes.TooManyRooms, (await refused.WaitForAsync(f => f.Type is MessageTypes.Error or MessageTypes.RoomJoined, Long)).ErrorCode);
        Assert.Equal(0, strict.Get<Bridge.Worker.Rooms.RoomRegistry>().ActiveRooms);
        await Store.PublishAsync(nats.Server, [rooms[0]]);
        Assert.True(await refused.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Latest_while_messages_keep_arriving_loses_nothing_between_the_latest_values_and_the_live_ones()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("dash");
        var rooms = Enumerable.Range(0, 20).Select(i => $"{site}.d{i}").ToList();
        await Store.PublishManyAsync(nats.Server, rooms);
        using var stop = new CancellationTokenSource();
        var published = new List<(string Room, ulong Seq)>();
        var publishing = Task.Run(async () =>
        {
            for (var i = 0; !stop.IsCancellationRequested && i < 400; i++)
            {
                published.AddRange(await Store.PublishAsync(nats.Server, [rooms[i % rooms.Count]], offset: i));
            }
        });

        await Task.Delay(100);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.SendAsync(Store.Join($"{site}.*", new() { ["latest"] = true }));
        var joined = await client.WaitForAsync(f => f.Type == MessageTypes.RoomJoined, Long);
        await Task.Delay(300);
        await stop.CancelAsync();
        await publishing;
        var after = published.Where(p => p.Seq > joined.Seq).ToList();
        var got = await client.CollectAsync(after.Count, f => f.Type == Store.Type, Long);
        Assert.Equal(after.Select(p => p.Seq), got.Select(f => f.Seq));
        Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(300)));
    }

    [Fact]
    public async Task Latest_over_sse_sends_the_latest_values_without_ids_then_room_joined_with_the_position()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("sensor");
        var stored = await Store.PublishAsync(nats.Server, [room, room, room]);
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, $"{room}&latest=true");
        var latest = await sse.WaitForAsync(e => e.Event == Store.Type);
        Assert.Null(latest.Id);
        Assert.Equal(stored[^1].Seq, latest.Json["seq"]!.GetValue<ulong>());
        var joined = await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        Assert.Equal(stored[^1].Seq.ToString(), joined.Id);
        Assert.Equal(1, joined.Json["payload"]!["latest"]!.GetValue<int>());
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    [InlineData("sse")]
    public async Task Conflation_of_1000_messages_a_second_at_max_rate_10_gives_about_10_a_second_and_ends_on_the_last_value(string transport)
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room("ticker");
        await using var ws = transport == "sse" ? null : await TestClient.ConnectAsync(worker.WebSocketUrl, transport);
        await using var sse = transport == "sse" ? await SseClient.ConnectAsync(worker.HttpUrl, $"{room}&maxRate=10") : null;
        if (ws is not null)
        {
            await ws.JoinPatternAsync(room, new() { ["maxRate"] = 10 });
        }
        else
        {
            await sse!.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        }

        var clock = Stopwatch.StartNew();
        var (count, last) = await PublishAtRateAsync(room, perSecond: 1000, TimeSpan.FromSeconds(3));
        var elapsed = clock.Elapsed;

        var got = new List<(ulong Seq, string Payload)>();
        while (got.Count == 0 || got[^1].Seq != last)
        {
            got.Add(ws is not null
                ? await ws.WaitForAsync(f => f.Type == Store.Type).ContinueWith(t => (t.Result.Seq, t.Result.Payload!.ToJsonString()))
                : await sse!.WaitForAsync(e => e.Event == Store.Type).ContinueWith(t => (t.Result.Json["seq"]!.GetValue<ulong>(), t.Result.Json["payload"]!.ToJsonString())));
        }

        // At most 10 a second (one more for the trailing edge), in order, ending on the last value published.
        Assert.True(
            got.Count >= 3 && got.Count <= (int)(elapsed.TotalSeconds * 10) + 2,
            $"{got.Count} delivered of {count} published in {elapsed.TotalSeconds:F2} s: not about 10 a second");
        Assert.Equal(got.Select(g => g.Seq).Order(), got.Select(g => g.Seq));
        Assert.Equal((count - 1).ToString(), got[^1].Payload);
        Assert.True(count > 10 * got.Count, $"{count} published, {got.Count} delivered: nothing was conflated");
    }

    [Fact]
    public async Task A_conflated_member_that_reads_slowly_gets_fresh_values_while_an_unconflated_one_lags_and_it_ends_on_each_rooms_last()
    {
        // Both read at most ~50 frames a second through a small socket buffer; the rooms publish 200 a second (16 KB
        // each, so the worker's buffers hold few of them), and the conflated member's rate (10 a second on each of 10
        // rooms) is twice what it reads. Its values must stay
        // fresh: it hands a value to its connection only as the connection sends, so what waits in the queue and the
        // socket is a few frames, not a growing backlog of old ones (the unconflated member's is that backlog).
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("slowscreen");
        var rooms = Enumerable.Range(0, 10).Select(i => $"{site}.i{i}").ToList();
        await using var conflated = await TestClient.ConnectAsync(worker.WebSocketUrl, receiveBufferBytes: 4096);
        await using var unconflated = await TestClient.ConnectAsync(worker.WebSocketUrl, receiveBufferBytes: 4096);
        await conflated.JoinPatternAsync($"{site}.*", new() { ["maxRate"] = 10 });
        await unconflated.JoinPatternAsync($"{site}.*");
        conflated.ReadDelay = unconflated.ReadDelay = TimeSpan.FromMilliseconds(20);

        var clock = Stopwatch.StartNew();
        var published = new System.Collections.Concurrent.ConcurrentDictionary<ulong, TimeSpan>();
        using var stop = new CancellationTokenSource();
        var conflatedAges = Ages(conflated, published, clock, stop.Token);
        var unconflatedAges = Ages(unconflated, published, clock, stop.Token);

        var duration = TimeSpan.FromSeconds(6);
        var pad = new string('x', 16_000);
        var newest = new Dictionary<string, ulong>();
        await using (var connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url }))
        {
            var js = new NatsJSContext(connection);
            var count = 0;
            while (clock.Elapsed < duration)
            {
                for (var due = (int)(clock.Elapsed.TotalSeconds * 200); count < due; count++)
                {
                    var room = rooms[count % rooms.Count];
                    var at = clock.Elapsed;
                    var ack = await js.PublishAsync($"rooms.{room}", Encoding.UTF8.GetBytes($"\"{count} {pad}\""), headers: new NatsHeaders { [NatsSubjects.TypeHeader] = Store.Type });
                    ack.EnsureSuccess();
                    published[ack.Seq] = at;
                    newest[room] = ack.Seq;
                }

                await Task.Delay(10);
            }
        }

        // The conflated member ends on every room's last value (the trailing edge), however slowly it reads.
        var last = new HashSet<ulong>(newest.Values);
        await Eventually.TrueAsync(() => last.All(conflatedAges.Seqs.Contains), Long);
        await stop.CancelAsync();

        // Ages of the values received in the second half of the publishing (steady state).
        var half = duration / 2;
        var fresh = conflatedAges.Between(half, duration);
        var lagging = unconflatedAges.Between(half, duration);
        Assert.True(fresh.Count >= 10 && lagging.Count >= 10, $"too few values to compare: {fresh.Count} conflated, {lagging.Count} unconflated");
        var freshP90 = Percentile(fresh, 0.9);
        var laggingP90 = Percentile(lagging, 0.9);
        Assert.True(
            freshP90 * 4 < laggingP90,
            $"conflated values' age p90 {freshP90.TotalMilliseconds:F0} ms ({fresh.Count} values), unconflated {laggingP90.TotalMilliseconds:F0} ms ({lagging.Count}), {published.Count} published in {duration.TotalSeconds:F0} s: the conflated member's values were not fresh");
    }

    [Fact]
    public async Task Conflated_members_of_one_pattern_each_get_its_rate_and_one_that_pauses_ends_on_each_rooms_last_while_the_others_keep_theirs()
    {
        // Ten members of one pattern at one rate share one conflation group on the worker (WebSocket JSON and
        // MessagePack, and SSE). One stops reading while the rooms publish (8 KB values, so its queue refuses within
        // a few): it owes its rooms, and when it reads again it gets each room's newest. The others are not held back.
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("screens");
        var pattern = $"{site}.*";
        var rooms = Enumerable.Range(0, 10).Select(i => $"{site}.i{i}").ToList();
        var readers = new List<TestClient>();
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, $"{pattern}&maxRate=4");
        await using var paused = await TestClient.ConnectAsync(worker.WebSocketUrl, startReading: false, receiveBufferBytes: 4096);
        try
        {
            for (var i = 0; i < 8; i++)
            {
                var client = await TestClient.ConnectAsync(worker.WebSocketUrl, i % 2 == 0 ? Subprotocols.Json : Subprotocols.MessagePack);
                readers.Add(client);
                await client.JoinPatternAsync(pattern, new() { ["maxRate"] = 4 });
            }

            await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
            await paused.SendAsync(Store.Join(pattern, new() { ["maxRate"] = 4 }));
            await Eventually.TrueAsync(() => worker.Get<ConnectionTracker>().Sessions.Count(s => s.Rooms.Find(pattern)?.State == MemberState.Live) == 10);
            var room = worker.Get<RoomRegistry>().Snapshot().Single(r => r.Name == pattern);
            Assert.Equal([4.0], room.ConflationGroups.Select(g => g.Rate));
            Assert.Equal(10, room.ConflationGroups[0].MemberCount);

            var clock = Stopwatch.StartNew();
            var newest = new Dictionary<string, ulong>();
            var count = 0;
            var pad = new string('x', 8_000);
            await using (var connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url }))
            {
                var js = new NatsJSContext(connection);
                while (clock.Elapsed < TimeSpan.FromSeconds(3))
                {
                    // What is due goes out together (one publish after another's ack fell far behind the 300/s on a
                    // loaded CI machine, and with too few values the others' counts no longer dwarf what the paused
                    // member's queue holds); each room's newest is the largest seq acked for it.
                    var batch = new List<(string Target, Task<PubAckResponse> Ack)>();
                    for (var due = (int)(clock.Elapsed.TotalSeconds * 300); count < due; count++)
                    {
                        var target = rooms[count % rooms.Count];
                        batch.Add((target, js.PublishAsync($"rooms.{target}", Encoding.UTF8.GetBytes($"\"{count} {pad}\""), headers: new NatsHeaders { [NatsSubjects.TypeHeader] = Store.Type }).AsTask()));
                    }

                    foreach (var (target, pending) in batch)
                    {
                        var ack = await pending;
                        ack.EnsureSuccess();
                        newest[target] = Math.Max(newest.GetValueOrDefault(target), ack.Seq);
                    }

                    await Task.Delay(10);
                }
            }

            var elapsed = clock.Elapsed;
            var last = newest.Values.ToHashSet();
            var most = (int)(elapsed.TotalSeconds * 4) + 2; // per room: the rate, and the trailing edge
            var others = new List<List<(string Room, ulong Seq)>>();
            foreach (var client in readers)
            {
                others.Add(await ReadUntilAsync(last, () => client.WaitForAsync(f => f.Type == Store.Type, Long).ContinueWith(t => (t.Result.Room!, t.Result.Seq))));
            }

            others.Add(await ReadUntilAsync(last, () => sse.WaitForAsync(e => e.Event == Store.Type, Long).ContinueWith(t => (t.Result.Json["room"]!.GetValue<string>(), t.Result.Json["seq"]!.GetValue<ulong>()))));

            // The paused member has not read a frame yet: it gets each room's newest once it does.
            paused.StartReading();
            var late = await ReadUntilAsync(last, () => paused.WaitForAsync(f => f.Type == Store.Type, Long).ContinueWith(t => (t.Result.Room!, t.Result.Seq)));

            foreach (var got in others.Append(late))
            {
                Assert.All(got.GroupBy(g => g.Room), perRoom =>
                {
                    Assert.Equal(perRoom.Select(g => g.Seq).Order(), perRoom.Select(g => g.Seq));
                    Assert.True(perRoom.Count() <= most, $"{perRoom.Count()} values of {perRoom.Key} in {elapsed.TotalSeconds:F1} s at maxRate 4");
                });
            }

            // Every member that read kept its rate (several values per room), and the paused one was refused: it was
            // sent far fewer, yet ends on every room's last value.
            Assert.All(others, got => Assert.All(rooms, r => Assert.True(got.Count(g => g.Room == r) >= 3, $"{got.Count(g => g.Room == r)} values of {r} for a member that read; {count} published")));
            Assert.True(late.Count < others.Min(o => o.Count) / 2, $"the paused member got {late.Count} values, the others at least {others.Min(o => o.Count)}: it was not held back");
        }
        finally
        {
            foreach (var client in readers)
            {
                await client.DisposeAsync();
            }
        }
    }

    /// <summary>Reads values until every seq of <paramref name="last"/> was among them.</summary>
    private static async Task<List<(string Room, ulong Seq)>> ReadUntilAsync(HashSet<ulong> last, Func<Task<(string Room, ulong Seq)>> next)
    {
        var got = new List<(string Room, ulong Seq)>();
        var missing = last.ToHashSet();
        while (missing.Count > 0)
        {
            var value = await next();
            got.Add(value);
            missing.Remove(value.Seq);
        }

        return got;
    }

    private static AgeLog Ages(TestClient client, System.Collections.Concurrent.ConcurrentDictionary<ulong, TimeSpan> published, Stopwatch clock, CancellationToken stop)
    {
        var log = new AgeLog();
        _ = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                Frame frame;
                try
                {
                    frame = await client.WaitForAsync(f => f.Type == Store.Type, Long).WaitAsync(stop);
                }
                catch (Exception)
                {
                    return;
                }

                // A value may arrive before its publish's ack was recorded: it counts as received, without an age.
                var now = clock.Elapsed;
                log.Add(frame.Seq, now, published.TryGetValue(frame.Seq, out var at) ? now - at : null);
            }
        }, CancellationToken.None);
        return log;
    }

    private static TimeSpan Percentile(List<TimeSpan> ages, double p)
    {
        ages.Sort();
        return ages[Math.Min(ages.Count - 1, (int)(ages.Count * p))];
    }

    /// <summary>What one client received: each value's seq, when, and how old it was then.</summary>
    private sealed class AgeLog
    {
        private readonly Lock _gate = new();
        private readonly List<(TimeSpan At, TimeSpan Age)> _values = [];
        private readonly HashSet<ulong> _seqs = [];

        public void Add(ulong seq, TimeSpan at, TimeSpan? age)
        {
            lock (_gate)
            {
                if (age is { } known)
                {
                    _values.Add((at, known));
                }

                _seqs.Add(seq);
            }
        }

        public IReadOnlySet<ulong> Seqs
        {
            get
            {
                lock (_gate)
                {
                    return _seqs.ToHashSet();
                }
            }
        }

        public List<TimeSpan> Between(TimeSpan from, TimeSpan to)
        {
            lock (_gate)
            {
                return [.. _values.Where(v => v.At >= from && v.At < to).Select(v => v.Age)];
            }
        }
    }

    [Fact]
    public async Task A_conflated_pattern_with_latest_gets_each_room_s_newest_then_at_most_its_rate_per_room()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var site = Names.Room("screen");
        var rooms = Enumerable.Range(0, 5).Select(i => $"{site}.i{i}").ToList();
        var first = await Store.PublishManyAsync(nats.Server, rooms);
        await using var client = await TestClient.ConnectAsync(worker.WebSocketUrl);
        await client.SendAsync(Store.Join($"{site}.*", new() { ["latest"] = true, ["maxRate"] = 2 }));
        var latest = await client.CollectAsync(5, f => f.Type == Store.Type);
        Assert.Equal(first.Select(f => f.Seq).Order(), latest.Select(f => f.Seq).Order());
        await client.WaitForAsync(f => f.Type == MessageTypes.RoomJoined);

        // 50 updates per room in a burst: each room ends on its newest, and sends a handful at most.
        var burst = await Store.PublishAsync(nats.Server, Enumerable.Range(0, 250).Select(i => rooms[i % 5]));
        var newest = burst.GroupBy(b => b.Room).ToDictionary(g => g.Key, g => g.Max(b => b.Seq));
        var got = new List<Frame>();
        while (newest.Any(n => !got.Any(f => f.Seq == n.Value)))
        {
            got.Add(await client.WaitForAsync(f => f.Type == Store.Type));
        }

        Assert.True(got.Count < 100, $"{got.Count} of 250 sent: not conflated");
        Assert.All(got.GroupBy(f => f.Room!), g => Assert.Equal(g.Select(f => f.Seq).Order(), g.Select(f => f.Seq)));
        Assert.True(await client.NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(1200)));
    }

    [Fact]
    public async Task A_slow_pattern_member_falls_behind_reads_the_pattern_from_the_stream_and_ends_live_with_every_message_once()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, Bursts.SmallSendQueue);
        using var meters = new WorkerMeters(worker);
        var site = Names.Room("burst");
        await using var slow = await TestClient.ConnectAsync(worker.WebSocketUrl, receiveBufferBytes: 4096);
        slow.ReadDelay = TimeSpan.FromMilliseconds(1);
        await slow.JoinPatternAsync($"{site}.*");

        var body = "\"" + new string('x', 4000) + "\"";
        var rooms = Enumerable.Range(0, 2000).Select(i => $"{site}.r{i % 4}").ToList();
        var stored = await Store.PublishManyAsync(nats.Server, rooms, _ => body);
        var got = await slow.CollectAsync(stored.Count, f => f.Type == Store.Type, Long);
        Assert.Equal(stored.Select(s => s.Seq).Order(), got.Select(f => f.Seq));
        Assert.True(meters.Total("bridge.catchups") >= 1, "the member never fell behind: the burst tested nothing");
        await Eventually.TrueAsync(() => worker.Get<Bridge.Worker.Connections.RoomReader>().Behind == 0, Long);
        var live = await Store.PublishAsync(nats.Server, [rooms[0]]);
        Assert.Equal(live[0].Seq, (await slow.WaitForAsync(f => f.Type == Store.Type)).Seq);
    }

    [Fact]
    public async Task A_fast_burst_to_a_pattern_with_many_members_reaches_each_complete_and_in_stream_order()
    {
        // The smallest backlog, and many members to dispatch to on the subscription's read loop: each gets every
        // message of the pattern's rooms once, in stream order (the backlog's own overflow: PatternSequenceTests).
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Nats:RoomFeedCapacity", "16"));
        using var meters = new WorkerMeters(worker);
        var site = Names.Room("drop");
        var clients = new List<TestClient>();
        try
        {
            for (var i = 0; i < 40; i++)
            {
                var client = await TestClient.ConnectAsync(worker.WebSocketUrl, i % 2 == 0 ? Subprotocols.Json : Subprotocols.MessagePack);
                clients.Add(client);
                await client.JoinPatternAsync($"{site}.>");
            }

            var stored = await Store.PublishManyAsync(nats.Server, Enumerable.Range(0, 3000).Select(i => $"{site}.r{i % 7}").ToList());
            var expected = stored.Select(s => s.Seq).Order().ToList();
            for (var i = 0; i < clients.Count; i++)
            {
                List<Frame> got;
                try
                {
                    got = await clients[i].CollectAsync(expected.Count, f => f.Type == Store.Type, Long);
                }
                catch (TimeoutException ex)
                {
                    throw new TimeoutException($"client {i}: {ex.Message}; gap fills {meters.Total("bridge.gap.fills")}", ex);
                }

                Assert.Equal(expected, got.Select(f => f.Seq));
            }

            Assert.True(await clients[0].NothingArrivesAsync(f => f.Type == Store.Type, TimeSpan.FromMilliseconds(300)));
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    /// <summary>Publishes to one room at about <paramref name="perSecond"/> for <paramref name="duration"/>; the payload is the index.</summary>
    private async Task<(int Count, ulong LastSeq)> PublishAtRateAsync(string room, int perSecond, TimeSpan duration)
    {
        await using var connection = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(connection);
        var clock = Stopwatch.StartNew();
        var count = 0;
        ulong last = 0;
        while (clock.Elapsed < duration)
        {
            // Catch up to the rate in slices of 10 ms, one at a time so the stream order is the index order.
            var due = (int)(clock.Elapsed.TotalSeconds * perSecond);
            while (count < due)
            {
                var ack = await js.PublishAsync($"rooms.{room}", Encoding.UTF8.GetBytes(count.ToString()), headers: new NatsHeaders { [NatsSubjects.TypeHeader] = Store.Type });
                ack.EnsureSuccess();
                last = ack.Seq;
                count++;
            }

            await Task.Delay(10);
        }

        return (count, last);
    }
}
