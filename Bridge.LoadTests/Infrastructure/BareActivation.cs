using System.Buffers;
using System.Diagnostics;
using System.Text;
using System.Threading.Channels;
using Bridge.Contracts;
using Bridge.Testing;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>
/// The floor under the activation row: what NATS.Net alone takes, on a fresh nats-server with a stream configured as
/// Bridge's (<c>rooms.&gt;</c>, direct gets allowed, republished to <c>live.rooms.&gt;</c>), to do the NATS part of
/// activating rooms as the worker does it: one core subscription per room on its republish subject (a
/// <see cref="NatsSubBase"/> with no buffer or task, as the worker's room feed), and each room's last seq asked for
/// by <c>multi_last</c> direct gets of up to 1,024 subjects (the worker's seam), a few requests in flight. One NATS
/// connection, as the worker has. No WebSocket, no room state, no <c>room.joined</c>: what is left of Bridge's time
/// above this is the gateway's own work (and its clients').
/// </summary>
internal static class BareActivation
{
    private const int ChunkSize = 1024; // subjects per multi_last request, as the worker's seam batches (StreamDirectGet)
    private const int Lanes = 4; // multi_last requests in flight at once, as the worker's (LastSeqBatch)
    private const int WarmUpRooms = 20_000;

    /// <summary>One bare activation: its time, this process's and nats-server's CPU over it, the subscriptions the server gained over it.</summary>
    public sealed record Result(TimeSpan Elapsed, TimeSpan ClientCpu, TimeSpan ServerCpu, long Subscriptions);

    /// <summary>Activates <paramref name="rooms"/> rooms (<c>bench.r0</c>, …) on a nats-server of its own, after a warm-up pass on other names.</summary>
    public static async Task<Result> RunAsync(int rooms, CancellationToken cancellationToken)
    {
        await using var nats = await NatsServerProcess.StartAsync();
        await using var connection = new NatsConnection(new NatsOpts { Url = nats.Url, Name = "bare-activation" });
        await connection.ConnectAsync();
        var js = new NatsJSContext(connection);
        await js.CreateOrUpdateStreamAsync(
            new StreamConfig("ROOMS", [$"{NatsSubjects.DefaultRoomPrefix}.>"])
            {
                AllowDirect = true,
                Republish = new Republish { Src = $"{NatsSubjects.DefaultRoomPrefix}.>", Dest = $"{NatsSubjects.DefaultLivePrefix}.>" },
            },
            cancellationToken);

        // Warm: this process's subscribe and request paths compiled and promoted before the measured pass (the worker is
        // warmed before it is ready), on rooms of other names, then unsubscribed.
        for (var pass = 0; pass < 2; pass++)
        {
            var warm = await ActivateAsync(connection, Math.Min(rooms, WarmUpRooms), i => $"warmup{pass}.r{i}", cancellationToken);
            foreach (var feed in warm)
            {
                await feed.DisposeAsync();
            }
        }

        await connection.PingAsync(cancellationToken);
        // The server's own and JetStream's internal subscriptions are in its count too: only the growth is the rooms'.
        var before = (await nats.MonitorAsync("/varz"))["subscriptions"]!.GetValue<long>();
        // This process's garbage from earlier rounds is not collected on the floor's time.
        GC.Collect(2, GCCollectionMode.Forced, blocking: true, compacting: true);
        GC.WaitForPendingFinalizers();
        await Task.Delay(200, cancellationToken);
        var (client, server) = (ProcessStats.CpuTime(Environment.ProcessId), ProcessStats.CpuTime(nats.Pid));
        var sw = Stopwatch.StartNew();
        var feeds = await ActivateAsync(connection, rooms, i => "bench.r" + i.ToString(System.Globalization.CultureInfo.InvariantCulture), cancellationToken);
        await connection.PingAsync(cancellationToken);
        var elapsed = sw.Elapsed;
        var result = new Result(
            elapsed, ProcessStats.CpuTime(Environment.ProcessId) - client, ProcessStats.CpuTime(nats.Pid) - server,
            (await nats.MonitorAsync("/varz"))["subscriptions"]!.GetValue<long>() - before);
        foreach (var feed in feeds)
        {
            await feed.DisposeAsync();
        }

        return result;
    }

    private static async Task<Feed[]> ActivateAsync(NatsConnection connection, int rooms, Func<int, string> name, CancellationToken cancellationToken)
    {
        var feeds = new Feed[rooms];
        var chunks = Channel.CreateUnbounded<int>();
        for (var start = 0; start < rooms; start += ChunkSize)
        {
            chunks.Writer.TryWrite(start);
        }

        chunks.Writer.Complete();
        await Task.WhenAll(Enumerable.Range(0, Lanes).Select(async _ =>
        {
            await foreach (var start in chunks.Reader.ReadAllAsync(cancellationToken))
            {
                var end = Math.Min(rooms, start + ChunkSize);
                var subjects = new List<string>(end - start);
                for (var i = start; i < end; i++)
                {
                    var room = name(i);
                    var feed = new Feed(connection, $"{NatsSubjects.DefaultLivePrefix}.{room}");
                    await connection.AddSubAsync(feed, cancellationToken);
                    feeds[i] = feed;
                    subjects.Add($"{NatsSubjects.DefaultRoomPrefix}.{room}");
                }

                // The seams: every room's last seq, asked for after its subscription (the server answers in order).
                await LastSeqsAsync(connection, subjects, cancellationToken);
            }
        }));
        return feeds;
    }

    /// <summary>One multi_last direct get, read to its end-of-batch status as the worker reads it (NATS.Net's request subscription).</summary>
    private static async Task<int> LastSeqsAsync(NatsConnection connection, List<string> subjects, CancellationToken cancellationToken)
    {
        var request = new StringBuilder("{\"multi_last\":[");
        for (var i = 0; i < subjects.Count; i++)
        {
            request.Append(i == 0 ? "\"" : ",\"").Append(subjects[i]).Append('"');
        }

        request.Append("]}");
        await using var sub = await connection.CreateRequestSubAsync<byte[], byte[]>(
            "$JS.API.DIRECT.GET.ROOMS",
            Encoding.UTF8.GetBytes(request.ToString()),
            replyOpts: new NatsSubOpts
            {
                Timeout = TimeSpan.FromSeconds(10),
                StopOnEmptyMsg = false,
                ChannelOpts = new NatsSubChannelOpts { Capacity = subjects.Count + 2, FullMode = BoundedChannelFullMode.DropNewest },
            },
            cancellationToken: cancellationToken);
        var found = 0;
        await foreach (var msg in sub.Msgs.ReadAllAsync(cancellationToken))
        {
            var code = msg.Headers?.Code ?? 0;
            if (code is 0 or 200)
            {
                found++;
                continue;
            }

            if (code is 204 or 404)
            {
                return found;
            }

            throw new InvalidOperationException($"multi_last direct get failed with status {code} {msg.Headers?.MessageText}");
        }

        throw new TimeoutException("multi_last direct get got no end of batch");
    }

    /// <summary>A room's subscription with nothing behind it (the worker's room feed hands each message to its room).</summary>
    private sealed class Feed(INatsConnection connection, string subject)
        : NatsSubBase(connection, connection.SubscriptionManager, subject, queueGroup: null, opts: null)
    {
        protected override ValueTask ReceiveInternalAsync(string subject, string? replyTo, ReadOnlySequence<byte>? headersBuffer, ReadOnlySequence<byte> payloadBuffer) =>
            ValueTask.CompletedTask;

        protected override void TryComplete()
        {
        }
    }
}
