using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Integration;

/// <summary>
/// Resume positions at the bounds of the unsigned range, on every transport: 0, 1, inside, the last seq, last + 1,
/// 2^63 and 2^64 - 1. A position beyond the room's last message replays nothing and says <c>truncated</c>, like any
/// position the room never had; the connection is then live from the room's real position (issue 12, kind 2).
/// Each test has its own nats-server, so the room's three messages are stream seqs 1, 2 and 3.
/// </summary>
public sealed class SeqBoundsTests : IAsyncLifetime
{
    private const ulong Last = 3;

    /// <summary>since → messages replayed, truncated. Every join ends at position <see cref="Last"/>.</summary>
    public static readonly (ulong Since, int Replayed, bool Truncated)[] Table =
    [
        (0, 3, false),
        (1, 2, false),
        (2, 1, false),
        (Last, 0, false),
        (Last + 1, 0, true),
        (1UL << 63, 0, true),
        ((1UL << 63) + 1, 0, true),
        (ulong.MaxValue - 1, 0, true),
        (ulong.MaxValue, 0, true),
    ];

    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private Bridge.Testing.NatsServerProcess _nats = null!;
    private WorkerHost _worker = null!;
    private readonly string _room = Names.Room("sb");

    public async Task InitializeAsync()
    {
        _nats = await Bridge.Testing.NatsServerProcess.StartAsync();
        // A quiet room: a poll with nothing to replay answers after PollTimeout.
        _worker = await WorkerHost.StartAsync(_nats, ("Bridge:Connections:PollTimeout", "00:00:01"));
        var seqs = await PublishAsync(3);
        Assert.Equal([1UL, 2UL, 3UL], seqs);
    }

    public async Task DisposeAsync()
    {
        await _worker.DisposeAsync();
        await _nats.DisposeAsync();
    }

    private async Task<List<ulong>> PublishAsync(int count)
    {
        await using var backend = new NatsConnection(new NatsOpts { Url = _nats.Url });
        var js = new NatsJSContext(backend);
        var seqs = new List<ulong>();
        for (var i = 0; i < count; i++)
        {
            var ack = await js.PublishAsync($"rooms.{_room}", "{}"u8.ToArray(), headers: new NatsHeaders { [NatsSubjects.TypeHeader] = "x.m" });
            ack.EnsureSuccess();
            seqs.Add(ack.Seq);
        }

        return seqs;
    }

    [Theory]
    [InlineData(Subprotocols.Json)]
    [InlineData(Subprotocols.MessagePack)]
    public async Task A_websocket_join_at_every_bound_of_since_replays_what_is_after_it_and_goes_live(string protocol)
    {
        var clients = new List<TestClient>();
        try
        {
            foreach (var (since, replayed, truncated) in Table)
            {
                var client = await TestClient.ConnectAsync(_worker.WebSocketUrl, protocol);
                clients.Add(client);
                await client.SendAsync(new()
                {
                    ["type"] = MessageTypes.RoomJoin,
                    ["room"] = _room,
                    ["payload"] = new Dictionary<string, object?> { ["since"] = since },
                });
                var answer = await client.WaitForAsync(f => f.Type is MessageTypes.RoomJoined or MessageTypes.Error, TimeSpan.FromSeconds(20));
                Assert.True(answer.Type == MessageTypes.RoomJoined, $"since {since}: {answer}");
                Assert.Equal((since, replayed, truncated, Last), (since, answer.Payload!["replayed"]!.GetValue<int>(), answer.Payload["truncated"]!.GetValue<bool>(), answer.Seq));
            }

            // Every connection is live from the room's real position: the next message reaches each of them once.
            var next = (await PublishAsync(1))[0];
            foreach (var (client, row) in clients.Zip(Table))
            {
                var message = await client.WaitForAsync(f => f.Type == "x.m");
                Assert.Equal((row.Since, next), (row.Since, message.Seq));
            }
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task An_sse_resume_with_Last_Event_ID_at_every_bound_replays_what_is_after_it_and_goes_live()
    {
        var streams = new List<SseClient>();
        try
        {
            foreach (var (since, replayed, truncated) in Table)
            {
                var sse = await SseClient.ConnectAsync(_worker.HttpUrl, _room, lastEventId: since.ToString(System.Globalization.CultureInfo.InvariantCulture));
                streams.Add(sse);
                Assert.True(sse.Response.IsSuccessStatusCode, $"since {since}: {sse.Response.StatusCode}");
                var messages = 0;
                var answer = await sse.WaitForAsync(e =>
                {
                    messages += e.Event == "x.m" ? 1 : 0;
                    return e.Event is MessageTypes.RoomJoined or MessageTypes.Error;
                }, TimeSpan.FromSeconds(20));
                Assert.True(answer.Event == MessageTypes.RoomJoined, $"since {since}: {answer.Data}");
                var joined = answer.Json;
                Assert.Equal((since, replayed, replayed, truncated, Last.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                    (since, messages, joined["payload"]!["replayed"]!.GetValue<int>(), joined["payload"]!["truncated"]!.GetValue<bool>(), answer.Id));
            }

            var next = (await PublishAsync(1))[0];
            foreach (var (sse, row) in streams.Zip(Table))
            {
                var message = await sse.WaitForAsync(e => e.Event == "x.m");
                Assert.Equal((row.Since, next.ToString(System.Globalization.CultureInfo.InvariantCulture)), (row.Since, message.Id));
            }
        }
        finally
        {
            foreach (var sse in streams)
            {
                await sse.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_poll_with_a_cursor_at_every_bound_replays_what_is_after_it_and_lists_the_room_as_truncated_beyond_the_end()
    {
        foreach (var (since, replayed, truncated) in Table)
        {
            var body = await PollAsync(since.ToString(System.Globalization.CultureInfo.InvariantCulture));
            Assert.True(body["errors"]!.AsArray().Count == 0, $"since {since}: {body.ToJsonString()}");
            Assert.Equal((since, replayed, truncated, "3"),
                (since, body["messages"]!.AsArray().Count, body["truncated"]!.AsArray().Any(r => r!.GetValue<string>() == _room), body["cursor"]!.GetValue<string>()));
        }

        // The cursor it answered resumes exactly.
        var next = (await PublishAsync(1))[0];
        var after = await PollAsync("3");
        Assert.Equal([next], after["messages"]!.AsArray().Select(m => m!["seq"]!.GetValue<ulong>()));
    }

    [Fact]
    public async Task A_poll_with_a_cursor_past_the_end_answers_truncated_at_once_not_at_its_timeout()
    {
        // A poll timeout far longer than the answer may take: the truncation is news, as a message is.
        await using var worker = await WorkerHost.StartAsync(_nats, ("Bridge:Connections:PollTimeout", "00:00:40"));
        var started = System.Diagnostics.Stopwatch.StartNew();
        var text = await Http.GetStringAsync(new Uri(worker.HttpUrl, $"/poll?rooms={_room}&cursor={Last + 100}"));
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal([_room], body["truncated"]!.AsArray().Select(r => r!.GetValue<string>()));
        Assert.Equal("3", body["cursor"]!.GetValue<string>());
        Assert.True(started.Elapsed < TimeSpan.FromSeconds(20), $"answered after {started.Elapsed}");
    }

    [Fact]
    public async Task A_Last_Event_ID_over_16_KiB_is_refused_with_a_message_that_says_so_and_a_malformed_one_with_the_cursor_rule()
    {
        foreach (var (lastEventId, message) in new[]
        {
            (new string('1', 16 * 1024 + 1), "Last-Event-ID is longer than 16 KiB (16384 characters)"),
            ("x=1=2", "Last-Event-ID must be a seq (one room) or room=seq pairs separated by commas"),
        })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(_worker.HttpUrl, $"/sse?rooms={_room}"));
            request.Headers.Add("Last-Event-ID", lastEventId);
            using var response = await Http.SendAsync(request);
            var body = JsonNode.Parse(await response.Content.ReadAsStringAsync())!;
            Assert.Equal((System.Net.HttpStatusCode.BadRequest, "invalid_argument", message),
                (response.StatusCode, body["code"]!.GetValue<string>(), body["message"]!.GetValue<string>()));
        }
    }

    private async Task<JsonObject> PollAsync(string cursor)
    {
        var text = await Http.GetStringAsync(new Uri(_worker.HttpUrl, $"/poll?rooms={_room}&cursor={cursor}"));
        return JsonNode.Parse(text)!.AsObject();
    }
}
