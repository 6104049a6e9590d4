using System.Text;
using Bridge.Contracts;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;

namespace Bridge.Tests.Infrastructure;

/// <summary>A backend storing messages of many rooms straight into the stream, and the join frames of the pattern tests.</summary>
internal static class Store
{
    /// <summary>The type of every message stored here.</summary>
    public const string Type = "store.item";

    /// <summary>
    /// Stores one message per entry of <paramref name="rooms"/> (its payload is its index), one at a time so the stream
    /// order is the order given. Returns each room and the seq it was stored at.
    /// </summary>
    public static async Task<List<(string Room, ulong Seq)>> PublishAsync(NatsServerProcess nats, IEnumerable<string> rooms, int offset = 0)
    {
        await using var connection = new NatsConnection(new NatsOpts { Url = nats.Url });
        var js = new NatsJSContext(connection);
        var stored = new List<(string, ulong)>();
        var i = offset;
        foreach (var room in rooms)
        {
            var ack = await js.PublishAsync($"rooms.{room}", Encoding.UTF8.GetBytes((i++).ToString()), headers: new NatsHeaders { [NatsSubjects.TypeHeader] = Type });
            ack.EnsureSuccess();
            stored.Add((room, ack.Seq));
        }

        return stored;
    }

    /// <summary>Stores many messages at once (256 in flight): stream order is not the order given.</summary>
    public static async Task<List<(string Room, ulong Seq)>> PublishManyAsync(NatsServerProcess nats, IReadOnlyList<string> rooms, Func<int, string>? payload = null)
    {
        await using var connection = new NatsConnection(new NatsOpts { Url = nats.Url });
        var js = new NatsJSContext(connection);
        var stored = new (string, ulong)[rooms.Count];
        for (var start = 0; start < rooms.Count; start += 256)
        {
            var batch = Enumerable.Range(start, Math.Min(256, rooms.Count - start)).Select(async i =>
            {
                var body = payload?.Invoke(i) ?? i.ToString();
                var ack = await js.PublishAsync($"rooms.{rooms[i]}", Encoding.UTF8.GetBytes(body), headers: new NatsHeaders { [NatsSubjects.TypeHeader] = Type });
                ack.EnsureSuccess();
                stored[i] = (rooms[i], ack.Seq);
            });
            await Task.WhenAll(batch);
        }

        return [.. stored];
    }

    /// <summary>A <c>room.join</c> of a room or pattern with arguments (<c>since</c>, <c>latest</c>, <c>maxRate</c>).</summary>
    public static Dictionary<string, object?> Join(string room, Dictionary<string, object?>? args, string? id = null)
    {
        var frame = new Dictionary<string, object?> { ["type"] = MessageTypes.RoomJoin, ["room"] = room };
        if (args is not null)
        {
            frame["payload"] = args;
        }

        if (id is not null)
        {
            frame["id"] = id;
        }

        return frame;
    }

    /// <summary>Joins a room or pattern and returns its <c>room.joined</c>.</summary>
    public static async Task<Frame> JoinPatternAsync(this TestClient client, string pattern, Dictionary<string, object?>? args = null, TimeSpan? timeout = null)
    {
        await client.SendAsync(Join(pattern, args));
        return await client.WaitForAsync(f => f.Type == MessageTypes.RoomJoined && f.Room == pattern, timeout);
    }
}
