using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Infrastructure;

/// <summary>A backend publishing bursts straight to the stream (and a long-poll client reading them).</summary>
internal static class Bursts
{
    /// <summary>The type of every message published here.</summary>
    public const string Type = "burst.item";

    /// <summary>
    /// A small send queue (64 frames, 256 KiB of room messages) for the worker, so that a burst of a few thousand
    /// 4-8 KiB messages (12 MB and more: beyond what loopback sockets buffer, a few MB) really puts a member behind.
    /// </summary>
    public static readonly (string Key, string Value)[] SmallSendQueue =
    [
        ("Bridge:Connections:SendQueueCapacity", "64"),
        ("Bridge:Connections:SendQueueMaxBytes", "262144"),
    ];

    /// <summary>
    /// Publishes <paramref name="count"/> messages (a JSON string of about <paramref name="bodyBytes"/> bytes) as fast
    /// as JetStream takes them, 256 in flight. Returns their seqs in stream order: the order members must see them in.
    /// </summary>
    public static async Task<List<ulong>> PublishAsync(NatsServerProcess nats, string room, int count, int bodyBytes)
    {
        await using var connection = new NatsConnection(new NatsOpts { Url = nats.Url });
        var js = new NatsJSContext(connection);
        var body = Encoding.UTF8.GetBytes("\"" + new string('x', Math.Max(1, bodyBytes - 2)) + "\"");
        var headers = new NatsHeaders { [NatsSubjects.TypeHeader] = Type };
        var seqs = new ulong[count];
        for (var start = 0; start < count; start += 256)
        {
            var batch = Enumerable.Range(start, Math.Min(256, count - start))
                .Select(i => (Index: i, Ack: js.PublishAsync($"rooms.{room}", body, headers: headers).AsTask()))
                .ToList();
            foreach (var (index, ack) in batch)
            {
                var answer = await ack;
                answer.EnsureSuccess();
                seqs[index] = answer.Seq;
            }
        }

        return [.. seqs.Order()];
    }

    /// <summary>One long-poll of <paramref name="room"/>: the next cursor and the seqs of the messages it answered.</summary>
    public static async Task<(string Cursor, List<ulong> Page)> PollAsync(HttpClient http, WorkerHost worker, string room, string? cursor)
    {
        var query = cursor is null ? $"/poll?rooms={room}" : $"/poll?rooms={room}&cursor={Uri.EscapeDataString(cursor)}";
        var answer = await http.GetFromJsonAsync<JsonObject>(new Uri(worker.HttpUrl, query));
        Assert.Empty(answer!["errors"]!.AsArray());
        return (answer["cursor"]!.GetValue<string>(), [.. answer["messages"]!.AsArray().Select(m => m!["seq"]!.GetValue<ulong>())]);
    }

    /// <summary>
    /// A long-poll while a message is published every 100 ms, so it answers as soon as it is live in the room. Also
    /// returns the seqs published meanwhile.
    /// </summary>
    public static async Task<(string Cursor, List<ulong> Page, List<ulong> Published)> PollWhilePublishingAsync(
        HttpClient http, WorkerHost worker, NatsServerProcess nats, string room, string? cursor)
    {
        var poll = PollAsync(http, worker, room, cursor);
        var published = new List<ulong>();
        while (!poll.IsCompleted)
        {
            published.AddRange(await PublishAsync(nats, room, 1, 16));
            await Task.WhenAny(poll, Task.Delay(100));
        }

        var (next, page) = await poll;
        return (next, page, published);
    }
}
