using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

public sealed class SseAndPollTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    private static readonly HttpClient Http = new();

    private async Task<List<ulong>> PublishAsync(string room, int count, int offset = 0)
    {
        await using var backend = new NatsConnection(new NatsOpts { Url = nats.Server.Url });
        var js = new NatsJSContext(backend);
        var seqs = new List<ulong>();
        for (var i = 0; i < count; i++)
        {
            var ack = await js.PublishAsync($"rooms.{room}", System.Text.Encoding.UTF8.GetBytes((offset + i).ToString()),
                headers: new NatsHeaders { [NatsSubjects.TypeHeader] = "feed.item" });
            ack.EnsureSuccess();
            seqs.Add(ack.Seq);
        }

        return seqs;
    }

    [Fact]
    public async Task Sse_stream_has_the_headers_proxies_need_a_retry_hint_and_heartbeats_while_idle()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:SseHeartbeatInterval", "00:00:00.200"));
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, Names.Room());
        Assert.Equal(HttpStatusCode.OK, sse.Response.StatusCode);
        Assert.Equal("text/event-stream", sse.Response.Content.Headers.ContentType!.MediaType);
        Assert.Contains("no-cache", sse.Response.Headers.CacheControl!.ToString(), StringComparison.Ordinal);
        Assert.Equal("no", sse.Response.Headers.GetValues("X-Accel-Buffering").Single());
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
        Assert.Equal(2000, sse.Retry);
        Assert.Equal($": {worker.Id}", await sse.NextCommentAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(": heartbeat", await sse.NextCommentAsync(TimeSpan.FromSeconds(5)));
        Assert.Equal(": heartbeat", await sse.NextCommentAsync(TimeSpan.FromSeconds(5)));
    }

    [Fact]
    public async Task Sse_reconnect_with_Last_Event_ID_to_another_worker_resumes_one_room_without_loss()
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room();
        string lastId;
        await using (var first = await SseClient.ConnectAsync(workerA.HttpUrl, room))
        {
            await first.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);
            var seqs = await PublishAsync(room, 5);
            var got = await first.CollectAsync(5, e => e.Event == "feed.item");
            Assert.Equal(seqs.Select(s => s.ToString()), got.Select(e => e.Id));
            lastId = first.LastEventId!;
        }

        var missed = await PublishAsync(room, 200, offset: 5);
        await using var again = await SseClient.ConnectAsync(workerB.HttpUrl, room, lastId);
        var replayed = await again.CollectAsync(200, e => e.Event == "feed.item");
        Assert.Equal(missed, replayed.Select(e => e.Json["seq"]!.GetValue<ulong>()));
        var live = await PublishAsync(room, 2, offset: 205);
        var next = await again.CollectAsync(2, e => e.Event == "feed.item");
        Assert.Equal(live, next.Select(e => e.Json["seq"]!.GetValue<ulong>()));
        Assert.Equal(live[^1].ToString(), again.LastEventId);
    }

    [Fact]
    public async Task Sse_with_several_rooms_resumes_every_room_from_one_id_on_another_worker()
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server);
        await using var workerB = await WorkerHost.StartAsync(nats.Server);
        var rooms = new[] { Names.Room("a"), Names.Room("b"), Names.Room("c") };
        var csv = string.Join(',', rooms);
        var expected = rooms.ToDictionary(r => r, _ => new List<ulong>());
        string lastId;
        await using (var first = await SseClient.ConnectAsync(workerA.HttpUrl, csv))
        {
            await first.CollectAsync(3, e => e.Event == MessageTypes.RoomJoined);
            // Only room a and b get traffic before the drop; c never did.
            expected[rooms[0]].AddRange(await PublishAsync(rooms[0], 3));
            expected[rooms[1]].AddRange(await PublishAsync(rooms[1], 2));
            await first.CollectAsync(5, e => e.Event == "feed.item");
            lastId = first.LastEventId!;
            Assert.Contains($"{rooms[0]}={expected[rooms[0]][^1]}", lastId, StringComparison.Ordinal);
            Assert.Contains($"{rooms[1]}={expected[rooms[1]][^1]}", lastId, StringComparison.Ordinal);
            Assert.Contains($"{rooms[2]}=", lastId, StringComparison.Ordinal);
        }

        // Missed while away, interleaved over all three rooms.
        var missed = new List<ulong>();
        for (var i = 0; i < 10; i++)
        {
            missed.AddRange(await PublishAsync(rooms[i % 3], 1, offset: 100 + i));
        }

        await using var again = await SseClient.ConnectAsync(workerB.HttpUrl, csv, lastId);
        var got = await again.CollectAsync(10, e => e.Event == "feed.item");
        Assert.Equal(missed.Order(), got.Select(e => e.Json["seq"]!.GetValue<ulong>()).Order());
        foreach (var room in rooms)
        {
            var perRoom = got.Where(e => e.Json["room"]!.GetValue<string>() == room).Select(e => e.Json["seq"]!.GetValue<ulong>()).ToList();
            Assert.Equal(perRoom.Order(), perRoom);
        }
    }

    [Fact]
    public async Task Http_publish_stores_once_per_id_and_refuses_bad_input_with_the_documented_codes()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server);
        var room = Names.Room();
        await using var sse = await SseClient.ConnectAsync(worker.HttpUrl, room);
        await sse.WaitForAsync(e => e.Event == MessageTypes.RoomJoined);

        var url = new Uri(worker.HttpUrl, $"/api/rooms/{room}/messages");
        var body = new { type = "chat.message", id = "h-" + Guid.NewGuid().ToString("N"), payload = new { text = "via http" } };
        var first = await (await Http.PostAsJsonAsync(url, body)).Content.ReadFromJsonAsync<JsonObject>();
        var retry = await (await Http.PostAsJsonAsync(url, body)).Content.ReadFromJsonAsync<JsonObject>();
        Assert.Equal(first!["seq"]!.GetValue<ulong>(), retry!["seq"]!.GetValue<ulong>());
        Assert.False(first["duplicate"]!.GetValue<bool>());
        Assert.True(retry["duplicate"]!.GetValue<bool>());
        var e = await sse.WaitForAsync(x => x.Event == "chat.message");
        Assert.Equal("via http", e.Json["payload"]!["text"]!.GetValue<string>());

        async Task<(HttpStatusCode, string?)> Post(string path, string json)
        {
            var response = await Http.PostAsync(new Uri(worker.HttpUrl, path), new StringContent(json));
            var code = (await response.Content.ReadFromJsonAsync<JsonObject>())?["code"]?.GetValue<string>();
            return (response.StatusCode, code);
        }

        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.BadFrame), await Post($"/api/rooms/{room}/messages", "not json"));
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.MissingField), await Post($"/api/rooms/{room}/messages", "{\"payload\":1}"));
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.UnknownType), await Post($"/api/rooms/{room}/messages", "{\"type\":\"room.join\"}"));
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.InvalidRoom), await Post("/api/rooms/a..b/messages", "{\"type\":\"x\"}"));
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.InvalidRoom), await Post("/api/rooms/a.%3E/messages", "{\"type\":\"x\"}"));
        Assert.Equal((HttpStatusCode.BadRequest, ErrorCodes.InvalidRoom), await Post($"/api/rooms/{room}/messages", "{\"type\":\"x\",\"room\":\"other\"}"));
        Assert.Equal((HttpStatusCode.RequestEntityTooLarge, ErrorCodes.BadFrame), await Post($"/api/rooms/{room}/messages", "{\"type\":\"x\",\"payload\":\"" + new string('x', 70_000) + "\"}"));

        // A malformed room pattern, and a well-formed one broader than MinPatternPrefixTokens allows (a.* is a pattern).
        foreach (var (rooms, code) in new[] { ("a.%3E.b", ErrorCodes.InvalidRoom), ("a.*x", ErrorCodes.InvalidRoom), ("%3E", ErrorCodes.PatternTooBroad) })
        {
            using var badSse = await Http.GetAsync(new Uri(worker.HttpUrl, $"/sse?rooms={rooms}"));
            Assert.Equal(HttpStatusCode.BadRequest, badSse.StatusCode);
            Assert.Contains(code, await badSse.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        var badCursor = await Http.GetAsync(new Uri(worker.HttpUrl, $"/poll?rooms={room}&cursor=not-a-seq"));
        Assert.Equal(HttpStatusCode.BadRequest, badCursor.StatusCode);
    }

    [Fact]
    public async Task A_sequence_of_long_polls_across_two_workers_sees_every_message_exactly_once()
    {
        await using var workerA = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:PollTimeout", "00:00:01"), ("Bridge:Connections:PollMaxMessages", "25"));
        await using var workerB = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:PollTimeout", "00:00:01"), ("Bridge:Connections:PollMaxMessages", "25"));
        var rooms = new[] { Names.Room("p"), Names.Room("q") };
        var published = new List<(string Room, ulong Seq)>();
        var publisher = Task.Run(async () =>
        {
            for (var i = 0; i < 60; i++)
            {
                var room = rooms[i % 2];
                published.AddRange((await PublishAsync(room, 2, offset: i * 2)).Select(s => (room, s)));
                await Task.Delay(10);
            }
        });

        // The first poll (no cursor) establishes the positions; everything published after it must be seen.
        var first = await Http.GetFromJsonAsync<JsonObject>(new Uri(workerA.HttpUrl, $"/poll?rooms={string.Join(',', rooms)}"));
        var cursor = first!["cursor"]!.GetValue<string>();
        var firstMessages = first["messages"]!.AsArray().Select(m => m!["seq"]!.GetValue<ulong>()).ToList();
        var seen = new List<ulong>();
        var start = cursor.Split(',').ToDictionary(p => p.Split('=')[0], p => ulong.Parse(p.Split('=')[1]));
        Assert.Equal(rooms.Order(), start.Keys.Order());
        int Expected() => published.Count(p => p.Seq > start[p.Room]);

        for (var poll = 0; poll < 200 && (!publisher.IsCompleted || seen.Count < Expected()); poll++)
        {
            var worker = poll % 2 == 0 ? workerB : workerA;
            var answer = await Http.GetFromJsonAsync<JsonObject>(new Uri(worker.HttpUrl, $"/poll?rooms={string.Join(',', rooms)}&cursor={cursor}"));
            cursor = answer!["cursor"]!.GetValue<string>();
            Assert.Empty(answer["errors"]!.AsArray());
            seen.AddRange(answer["messages"]!.AsArray().Select(m => m!["seq"]!.GetValue<ulong>()));
        }

        await publisher;
        Assert.Subset(published.Select(p => p.Seq).ToHashSet(), firstMessages.ToHashSet());
        Assert.Empty(firstMessages.Intersect(seen));
        Assert.Equal(seen.Count, seen.Distinct().Count());
        Assert.Equal(published.Where(p => p.Seq > start[p.Room]).Select(p => p.Seq).Order(), seen.Order());
    }

    [Fact]
    public async Task Sse_and_poll_resume_more_rooms_than_concurrent_joins_each_with_a_backlog()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, ("Bridge:Connections:SendQueueCapacity", "64"));
        var rooms = Enumerable.Range(0, 30).Select(_ => Names.Room("many")).ToList();
        var positions = new Dictionary<string, ulong>();
        foreach (var room in rooms)
        {
            positions[room] = (await PublishAsync(room, 1))[0];
        }

        var missed = new List<ulong>();
        foreach (var room in rooms)
        {
            missed.AddRange(await PublishAsync(room, 40, offset: 1));
        }

        var cursor = string.Join(',', rooms.Select(r => $"{r}={positions[r]}"));
        await using (var sse = await SseClient.ConnectAsync(worker.HttpUrl, string.Join(',', rooms), cursor))
        {
            var got = await sse.CollectAsync(missed.Count, e => e.Event == "feed.item", TimeSpan.FromSeconds(30));
            Assert.Equal(missed.Order(), got.Select(e => e.Json["seq"]!.GetValue<ulong>()).Order());
        }

        var seen = new List<ulong>();
        for (var poll = 0; poll < 100 && seen.Count < missed.Count; poll++)
        {
            var answer = await Http.GetFromJsonAsync<JsonObject>(new Uri(worker.HttpUrl, $"/poll?rooms={string.Join(',', rooms)}&cursor={cursor}"));
            cursor = answer!["cursor"]!.GetValue<string>();
            seen.AddRange(answer["messages"]!.AsArray().Select(m => m!["seq"]!.GetValue<ulong>()));
        }

        Assert.Equal(missed.Order(), seen.Order());
    }
}
