using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>
/// Frames the real worker never sends (a repeated or older seq, seqs at the top of the unsigned range, a second
/// room.joined) and timings it rarely produces, from a scripted WebSocket server on loopback Kestrel: the only way to
/// show what the client itself does with them.
/// </summary>
public sealed class BridgeClientScriptedServerTests
{
    [Fact]
    public async Task Duplicate_and_older_seqs_are_dropped_and_a_4008_resumes_from_the_last_seq_delivered()
    {
        var joins = new ConcurrentQueue<JsonObject>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.SendTextAsync("""{"type":"welcome","payload":{"connectionId":"c","serverId":"scripted","heartbeatMs":30000,"protocol":1,"user":"anonymous"}}""");
            var join = await socket.ReceiveAsync();
            joins.Enqueue(join!);
            if (n == 1)
            {
                await socket.SendTextAsync("""{"type":"room.joined","room":"dup","seq":10,"payload":{"replayed":0,"truncated":false}}""");
                foreach (var seq in new[] { 11, 11, 9, 12 })
                {
                    await socket.SendTextAsync($$$"""{"type":"chat.message","room":"dup","seq":{{{seq}}},"ts":1767225600000,"payload":{"seq":{{{seq}}}}}""");
                }

                await socket.CloseAsync(CloseCodes.SlowConsumer, "slow consumer: send queue full");
            }
            else
            {
                await socket.SendTextAsync("""{"type":"chat.message","room":"dup","seq":12,"ts":1767225600000,"payload":{"seq":12}}""");
                await socket.SendTextAsync("""{"type":"room.joined","room":"dup","seq":12,"payload":{"replayed":0,"truncated":false}}""");
                await socket.SendTextAsync("""{"type":"chat.message","room":"dup","seq":13,"ts":1767225600000,"payload":{"seq":13}}""");
            }

            await socket.DrainAsync();
        });

        await using var client = NewClient(server.Url, BridgeFormat.Json, o => o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20));
        await client.ConnectAsync();
        var subscription = await client.JoinAsync("dup");
        var messages = await ReadAsync(subscription, 3);
        var connections = server.Connections;

        Assert.Equal([11UL, 12UL, 13UL], messages.Select(m => m.Seq));
        Assert.Equal(2, connections);
        Assert.Null(joins.First()["payload"]); // a first join without since is live
        Assert.Equal(12, joins.Last()["payload"]!["since"]!.GetValue<int>()); // the resume asks for what came after 12
    }

    private const ulong Max = ulong.MaxValue;

    /// <summary>Positions at the bounds of the unsigned range (issue 12 §2): 0, 1, a room's last and last+1, 2⁶³-1, 2⁶³, 2⁶⁴-2, 2⁶⁴-1.</summary>
    public static TheoryData<BridgeFormat, ulong, bool> SeqBounds()
    {
        var data = new TheoryData<BridgeFormat, ulong, bool>();
        foreach (var format in new[] { BridgeFormat.Json, BridgeFormat.MessagePack })
        {
            foreach (var seq in new ulong[] { 0, 1, 41, 42, (ulong)long.MaxValue, (ulong)long.MaxValue + 1, Max - 1, Max })
            {
                data.Add(format, seq, true);
                data.Add(format, seq, false); // joined live: the position comes from room.joined
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(SeqBounds))]
    public async Task Positions_at_the_bounds_of_the_unsigned_range_resume_and_drop_duplicates_without_wrapping(BridgeFormat format, ulong position, bool joinWithSince)
    {
        var room = "bounds.p" + position.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var next = position == Max ? (ulong?)null : position + 1;
        var sinces = new ConcurrentQueue<JsonNode?>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var join = await socket.ReceiveAsync();
            sinces.Enqueue(join!["payload"]?["since"]?.DeepClone());
            if (n == 1)
            {
                // A replayed count beyond int: clamped, not wrapped.
                await socket.SendAsync(Joined(room, position, replayed: 1L << 40));
                if (position > 0)
                {
                    await socket.SendAsync(Message(room, position - 1)); // older: dropped
                }

                await socket.SendAsync(Message(room, position)); // the position itself: a duplicate, dropped
                await socket.SendAsync(Message(room, -1)); // not an unsigned seq: the frame is skipped
                if (!socket.IsMsgPack)
                {
                    await socket.SendAsync(Message(room, 18446744073709551616m)); // 2⁶⁴: skipped
                }

                if (next is { } after)
                {
                    await socket.SendAsync(Message(room, after, ts: long.MaxValue)); // a ts beyond DateTimeOffset: clamped
                    await socket.SendAsync(Message(room, after)); // a duplicate
                }

                await socket.SendAsync(Message(room, 0)); // below every position: dropped
                await socket.CloseAsync(CloseCodes.SlowConsumer, "slow consumer: send queue full");
            }
            else
            {
                await socket.SendAsync(Joined(room, next ?? position, replayed: 0));
            }

            await socket.DrainAsync();
        });

        await using var client = NewClient(server.Url, format, o => o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20));
        await client.ConnectAsync();
        var subscription = await client.JoinAsync(room, joinWithSince ? position : null);
        Assert.Equal(int.MaxValue, subscription.LastJoin!.Replayed);
        if (next is { } expected)
        {
            var message = Assert.Single(await ReadAsync(subscription, 1));
            Assert.Equal(expected, message.Seq);
            Assert.Equal(DateTimeOffset.MaxValue.ToUnixTimeMilliseconds(), message.Timestamp.ToUnixTimeMilliseconds());
        }

        await Eventually.TrueAsync(() => sinces.Count == 2 && client.State == ConnectionState.Open, WaitLimit, "resumed after 4008");
        await Eventually.TrueAsync(() => subscription.LastJoin!.Replayed == 0, WaitLimit, "the resume's room.joined");
        await AssertNothingMoreAsync(subscription); // the older, duplicate and malformed seqs were dropped
        Assert.Equal(next ?? position, subscription.Position);
        Assert.Equal(2, server.Connections); // none of the frames above broke the connection: only the 4008 did

        var first = sinces.First();
        if (joinWithSince)
        {
            Assert.Equal(position, first!.GetValue<ulong>()); // sent exactly, in both formats
        }
        else
        {
            Assert.Null(first);
        }

        Assert.Equal(next ?? position, sinces.Last()!.GetValue<ulong>()); // the resume: the last seq delivered, or the position at 2⁶⁴-1
    }

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_second_room_joined_with_truncated_for_a_joined_room_is_surfaced_as_a_truncation_and_moves_the_position(BridgeFormat format)
    {
        var sinces = new ConcurrentQueue<JsonNode?>();
        var observing = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var join = await socket.ReceiveAsync();
            sinces.Enqueue(join!["payload"]?["since"]?.DeepClone());
            if (n == 1)
            {
                await socket.SendAsync(Joined("lag", 10, replayed: 0));
                await socket.SendAsync(Message("lag", 11));
                await observing.Task; // the application has its Joined handler in place
                // The member fell behind and retention dropped 12-19 before they reached it (issue 13).
                await socket.SendAsync(Joined("lag", 20, replayed: 0, truncated: true));
                await socket.SendAsync(Message("lag", 15)); // at or before the new position: never delivered after it
                await socket.SendAsync(Message("lag", 21));
                await socket.SendAsync(Message("lag", 22));
                await socket.CloseAsync(CloseCodes.SlowConsumer, "slow consumer: send queue full");
            }
            else
            {
                await socket.SendAsync(Joined("lag", 22, replayed: 0));
            }

            await socket.DrainAsync();
        });
        var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        await using var client = NewClient(server.Url, format, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20);
            o.LoggerFactory = loggerFactory;
        });
        await client.ConnectAsync();
        var subscription = await client.JoinAsync("lag");
        var joins = new ConcurrentQueue<RoomJoinInfo>();
        subscription.Joined += (_, info) => joins.Enqueue(info);
        observing.SetResult();

        var messages = await ReadAsync(subscription, 3);
        Assert.Equal([11UL, 21UL, 22UL], messages.Select(m => m.Seq));
        await Eventually.TrueAsync(() => joins.Count == 2, WaitLimit, "the truncation signal, then the resume");
        Assert.Equal([(20UL, true), (22UL, false)], joins.Select(j => (j.Seq, j.Truncated)));
        Assert.Equal(22UL, subscription.Position);
        Assert.Equal(22, sinces.Last()!.GetValue<int>()); // resumed after the last message, past the lost ones

        // The logs name each step with its event id: connected, the truncation, the reconnect.
        Assert.Contains(logs.Events, e => e.Id == 7002 && e.Message.Contains("scripted", StringComparison.Ordinal));
        Assert.Contains(logs.Events, e => e.Id == 7006 && e.Message.Contains("lag", StringComparison.Ordinal) && e.Level == LogLevel.Warning);
        Assert.Contains(logs.Events, e => e.Id == 7003 && e.Message.Contains("4008", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_live_join_answered_behind_another_rooms_long_replay_read_slowly_does_not_time_out_the_connection()
    {
        const int Backlog = 2000;
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var join = await socket.ReceiveAsync(); // both rooms in one batch join (protocol §4)
            Assert.Equal(["history", "live"], join!["payload"]!["rooms"]!.AsArray().Select(e => e!["room"]!.GetValue<string>()));
            for (var seq = 1UL; seq <= Backlog; seq++)
            {
                await socket.SendAsync(Message("history", seq)); // the replay comes before room.joined
            }

            await socket.SendAsync(Joined("live", 5000, replayed: 0)); // queued behind the replay
            await socket.SendAsync(Joined("history", Backlog, replayed: Backlog));
            await socket.DrainAsync();
        });
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.OpenTimeout = TimeSpan.FromSeconds(2);
            o.RoomBufferCapacity = 100;
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        var history = client.JoinAsync("history", since: 0);
        var live = client.JoinAsync("live");
        await client.ConnectAsync();

        // The replay is larger than the room's buffer: JoinAsync returns once it is full, so the application can read.
        var subscription = await history.WaitAsync(WaitLimit);
        var seen = new List<ulong>();
        await foreach (var message in subscription.ReadAllAsync(new CancellationTokenSource(WaitLimit * 2).Token))
        {
            seen.Add(message.Seq);
            if (seen.Count % 20 == 0)
            {
                await Task.Delay(50); // 5 s or more in all: over twice OpenTimeout, with frames arriving all the while
            }

            if (seen.Count == Backlog)
            {
                break;
            }
        }

        Assert.Equal(Enumerable.Range(1, Backlog).Select(i => (ulong)i), seen);
        Assert.Equal(5000UL, (await live.WaitAsync(WaitLimit)).Position);
        await Eventually.TrueAsync(() => subscription.LastJoin is not null, WaitLimit);
        Assert.Equal(Backlog, subscription.LastJoin!.Replayed);
        Assert.Equal([ConnectionState.Connecting, ConnectionState.Open], states.Select(s => s.State));
        Assert.Equal(1, server.Connections);
    }

    [Fact]
    public async Task A_connection_that_goes_silent_with_a_publish_unanswered_is_dropped_and_the_publish_sent_again_with_its_id()
    {
        var publishes = new ConcurrentQueue<JsonObject>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var publish = (await socket.ReceiveAsync())!;
            publishes.Enqueue(publish);
            if (n == 1)
            {
                await socket.DrainAsync(); // no ack, no frame: a frozen peer
                return;
            }

            await socket.SendAsync(new() { ["type"] = MessageTypes.Ack, ["room"] = "quiet", ["id"] = publish["id"]!.GetValue<string>(), ["seq"] = 7 });
            await socket.DrainAsync();
        });
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.AckTimeout = TimeSpan.FromMilliseconds(500);
            o.KeepAliveInterval = TimeSpan.Zero; // the watchdog alone notices it
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20);
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();

        var ack = await client.PublishAsync("quiet", "chat.message", new { text = "hello?" }).WaitAsync(WaitLimit);

        Assert.Equal(7UL, ack.Seq);
        Assert.Equal(2, server.Connections);
        Assert.Equal("ack timeout", Assert.Single(states, s => s.State == ConnectionState.Reconnecting).Reason);
        Assert.Equal(publishes.First()["id"]!.GetValue<string>(), publishes.Last()["id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Against_a_worker_that_names_no_room_on_batch_errors_too_many_rooms_splits_the_batch_and_a_later_error_retries_the_waiting_room_once()
    {
        // An older worker: welcome without limits, errors without room.
        var frames = new ConcurrentQueue<JsonObject>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            async Task<JsonObject> NextAsync()
            {
                var frame = (await socket.ReceiveAsync())!;
                frames.Enqueue(frame);
                return frame;
            }

            Task ErrorAsync(string code, JsonObject frame) => socket.SendAsync(new()
            {
                ["type"] = MessageTypes.Error,
                ["payload"] = new Dictionary<string, object?> { ["code"] = code, ["message"] = "refused", ["ref"] = frame["id"]!.GetValue<string>() },
            });

            await ErrorAsync(ErrorCodes.TooManyRooms, await NextAsync()); // the whole batch of four
            var first = await NextAsync();
            var second = await NextAsync();
            await socket.SendAsync(Joined("a", 1, 0));
            await socket.SendAsync(Joined("b", 1, 0));
            await socket.SendAsync(Joined("c", 1, 0));
            await ErrorAsync(ErrorCodes.Unavailable, second); // d's: the client joins d on its own
            var single = await NextAsync();
            await ErrorAsync(ErrorCodes.Unavailable, second); // d's batch join failed after all; its single join got no answer
            var retry = await NextAsync();
            await ErrorAsync(ErrorCodes.Unavailable, second); // once per batch: no second round of retries
            await Task.Delay(300); // a second round would be sent by now (backoff under 100 ms)
            await socket.SendAsync(Joined("d", 1, 0));
            while (await socket.ReceiveAsync() is { } more)
            {
                frames.Enqueue(more);
            }
        });
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(100);
        });
        var joins = new[] { "a", "b", "c", "d" }.Select(r => client.JoinAsync(r)).ToList();
        await client.ConnectAsync();
        await Task.WhenAll(joins).WaitAsync(WaitLimit);

        static string Rooms(JsonObject f) => f["room"]?.GetValue<string>() ?? string.Join(",", f["payload"]!["rooms"]!.AsArray().Select(e => e!["room"]!.GetValue<string>()));
        await Task.Delay(300); // nothing more comes
        Assert.Equal(["a,b,c,d", "a,b", "c,d", "d", "d"], frames.Select(Rooms));
    }

    [Theory]
    [InlineData(ErrorCodes.Unavailable)]
    [InlineData(ErrorCodes.RateLimited)]
    public async Task A_held_room_whose_rejoin_is_refused_retryably_8_times_is_retried_until_joined_and_delivers_again(string code)
    {
        // A worker restart during a JetStream leader election: every rejoin refused for longer than a first join's 5 tries.
        const int Refusals = 8;
        var rejoins = new ConcurrentQueue<JsonObject>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var join = await socket.ReceiveAsync();
            if (n == 1)
            {
                await socket.SendAsync(Joined("held", 1, 0));
                await socket.CloseAsync(CloseCodes.ServiceRestart, "service restart");
                await socket.DrainAsync();
                return;
            }

            for (var i = 0; i < Refusals && join is not null; i++)
            {
                rejoins.Enqueue(join);
                await socket.SendAsync(JoinError(code, join));
                join = await socket.ReceiveAsync();
            }

            if (join is not null)
            {
                rejoins.Enqueue(join);
                await socket.SendAsync(Joined("held", 1, 0));
                await socket.SendAsync(Message("held", 2));
            }

            await socket.DrainAsync();
        });
        var logs = new CapturingLoggerProvider();
        using var loggerFactory = LoggerFactory.Create(b => b.AddProvider(logs).SetMinimumLevel(LogLevel.Debug));
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(100);
            o.LoggerFactory = loggerFactory;
        });
        await client.ConnectAsync();
        var subscription = await client.JoinAsync("held");

        var message = Assert.Single(await ReadAsync(subscription, 1));
        Assert.Equal(2UL, message.Seq);
        Assert.Equal(2, server.Connections);
        Assert.Equal(Refusals + 1, rejoins.Count);
        Assert.All(rejoins, j => Assert.Equal(1, j["payload"]!["since"]!.GetValue<int>())); // each resumes from the position
        var retries = logs.Events.Where(e => e.Id == 7007).ToList(); // JoinRetry: every refusal is logged, naming the room
        Assert.Equal(Refusals, retries.Count);
        Assert.All(retries, e => Assert.Contains("held", e.Message));
        Assert.DoesNotContain(logs.Events, e => e.Id == 7008); // RoomEnded
    }

    [Fact]
    public async Task A_first_join_refused_unavailable_5_times_fails_with_unavailable_and_is_not_joined_again()
    {
        var joins = new ConcurrentQueue<JsonObject>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            while (await socket.ReceiveAsync() is { } join)
            {
                joins.Enqueue(join);
                await socket.SendAsync(JoinError(ErrorCodes.Unavailable, join));
                if (joins.Count == 5)
                {
                    await socket.CloseAsync(CloseCodes.ServiceRestart, "service restart"); // a held room would be joined on the next one
                }
            }
        });
        await using var client = NewClient(server.Url, BridgeFormat.Json, o =>
        {
            o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20);
            o.ReconnectMaxDelay = TimeSpan.FromMilliseconds(100);
        });
        await client.ConnectAsync();

        var error = await Assert.ThrowsAsync<BridgeException>(() => client.JoinAsync("first").WaitAsync(WaitLimit));
        Assert.Equal(ErrorCodes.Unavailable, error.Code);
        using var cts = new CancellationTokenSource(WaitLimit);
        while (server.Connections < 2)
        {
            await Task.Delay(20, cts.Token);
        }

        await Task.Delay(300); // a sixth try would be sent by now (backoff under 100 ms)
        Assert.Equal(5, joins.Count);
    }

    [Fact]
    public async Task A_room_refused_for_good_while_its_single_join_is_unanswered_is_left_so_the_worker_stops_sending_it()
    {
        var frames = new ConcurrentQueue<JsonObject>();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            var batch = (await socket.ReceiveAsync())!;
            var refused = new Dictionary<string, object?> { ["code"] = ErrorCodes.Unavailable, ["message"] = "refused", ["ref"] = batch["id"]!.GetValue<string>() };
            await socket.SendAsync(new() { ["type"] = MessageTypes.Error, ["payload"] = refused }); // naming no room: joined one by one
            _ = await socket.ReceiveAsync(); // a's single join
            _ = await socket.ReceiveAsync(); // b's
            await socket.SendAsync(new()
            {
                ["type"] = MessageTypes.Error,
                ["room"] = "b",
                ["payload"] = new Dictionary<string, object?> { ["code"] = ErrorCodes.Forbidden, ["message"] = "refused", ["ref"] = batch["id"]!.GetValue<string>() },
            }); // b's batch entry failed for good after all; b's single join is still unanswered
            await socket.SendAsync(Joined("a", 1, 0));
            while (await socket.ReceiveAsync() is { } frame)
            {
                frames.Enqueue(frame);
            }
        });
        await using var client = NewClient(server.Url, BridgeFormat.Json, o => o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20));
        var a = client.JoinAsync("a");
        var b = client.JoinAsync("b");
        await client.ConnectAsync();

        var error = await Assert.ThrowsAsync<BridgeException>(() => b.WaitAsync(WaitLimit));
        Assert.Equal(ErrorCodes.Forbidden, error.Code);
        await a.WaitAsync(WaitLimit);
        using var cts = new CancellationTokenSource(WaitLimit);
        while (!frames.Any(f => f["type"]!.GetValue<string>() == MessageTypes.RoomLeave && f["room"]?.GetValue<string>() == "b"))
        {
            await Task.Delay(20, cts.Token);
        }
    }

    [Theory]
    [InlineData(BridgeFormat.Json)]
    [InlineData(BridgeFormat.MessagePack)]
    public async Task A_room_message_whose_ts_is_not_a_64_bit_integer_is_delivered_with_the_unix_epoch_as_its_time(BridgeFormat format)
    {
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            await socket.ReceiveAsync();
            await socket.SendAsync(Joined("ts", 10, replayed: 0));
            await socket.SendAsync(Message("ts", 11UL));
            await socket.SendAsync(WithTs(Message("ts", 12UL), ulong.MaxValue)); // beyond a signed 64-bit integer
            await socket.SendAsync(WithTs(Message("ts", 13UL), 1767225600000.5)); // a fraction (MessagePack: a float)
            await socket.SendAsync(WithTs(Message("ts", 14UL), "1767225600000")); // not a number
            await socket.SendAsync(Message("ts", 15UL));
            await socket.DrainAsync();
        });
        await using var client = NewClient(server.Url, format);
        await client.ConnectAsync();

        var messages = await ReadAsync(await client.JoinAsync("ts"), 5);

        Assert.Equal([11UL, 12UL, 13UL, 14UL, 15UL], messages.Select(m => m.Seq));
        Assert.All(messages, m => Assert.Equal("ts", m.Room));
        Assert.All(messages, m => Assert.Equal(1, m.Payload!.Value.GetProperty("n").GetInt32()));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1767225600000), messages[0].Timestamp);
        Assert.All(messages.Skip(1).Take(3), m => Assert.Equal(DateTimeOffset.UnixEpoch, m.Timestamp));
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(1767225600000), messages[4].Timestamp);
    }

    [Fact]
    public async Task A_MessagePack_envelope_key_that_is_not_a_string_is_skipped_with_its_value_and_the_message_delivered()
    {
        var odd = WithIntegerKey();
        await using var server = await ScriptedServer.StartAsync(async (socket, n) =>
        {
            await socket.WelcomeAsync();
            await socket.ReceiveAsync();
            await socket.SendAsync(Joined("k", 10, replayed: 0));
            await socket.SendAsync(Message("k", 11UL));
            await socket.SendBytesAsync(odd);
            await socket.SendAsync(Message("k", 13UL));
            await socket.DrainAsync();
        });
        await using var client = NewClient(server.Url, BridgeFormat.MessagePack);
        await client.ConnectAsync();

        var messages = await ReadAsync(await client.JoinAsync("k"), 3);

        Assert.Equal([11UL, 12UL, 13UL], messages.Select(m => m.Seq));
        Assert.Equal("chat.message", messages[1].Type);
        Assert.Equal(DateTimeOffset.FromUnixTimeMilliseconds(5), messages[1].Timestamp);
        Assert.Equal(1, messages[1].Payload!.Value.GetProperty("n").GetInt32());
    }

    /// <summary>A worker's refusal of a single join: an error naming the room, its ref the join's id.</summary>
    private static Dictionary<string, object?> JoinError(string code, JsonObject join) => new()
    {
        ["type"] = MessageTypes.Error,
        ["room"] = join["room"]!.GetValue<string>(),
        ["payload"] = new Dictionary<string, object?> { ["code"] = code, ["message"] = "refused", ["ref"] = join["id"]!.GetValue<string>() },
    };

    private static Dictionary<string, object?> Joined(string room, ulong seq, long replayed, bool truncated = false) => new()
    {
        ["type"] = MessageTypes.RoomJoined,
        ["room"] = room,
        ["seq"] = seq,
        ["payload"] = new Dictionary<string, object?> { ["replayed"] = replayed, ["truncated"] = truncated },
    };

    private static Dictionary<string, object?> Message(string room, object seq, long ts = 1767225600000) => new()
    {
        ["type"] = "chat.message",
        ["room"] = room,
        ["seq"] = seq,
        ["ts"] = ts,
        ["payload"] = new Dictionary<string, object?> { ["n"] = 1 },
    };

    /// <summary>
    /// <c>{"type": "chat.message", 7: "x", "room": "k", "seq": 12, "ts": 5, "payload": {"n": 1}}</c>: a worker writes
    /// only string keys (§2); another key names no field, and the keys after it must still be read as keys.
    /// </summary>
    private static byte[] WithIntegerKey()
    {
        var buffer = new System.Buffers.ArrayBufferWriter<byte>();
        var writer = new MessagePack.MessagePackWriter(buffer);
        writer.WriteMapHeader(6);
        writer.Write("type");
        writer.Write("chat.message");
        writer.Write(7);
        writer.Write("x");
        writer.Write("room");
        writer.Write("k");
        writer.Write("seq");
        writer.Write(12UL);
        writer.Write("ts");
        writer.Write(5L);
        writer.Write("payload");
        writer.WriteMapHeader(1);
        writer.Write("n");
        writer.Write(1);
        writer.Flush();
        return buffer.WrittenSpan.ToArray();
    }

    private static Dictionary<string, object?> WithTs(Dictionary<string, object?> message, object ts)
    {
        message["ts"] = ts;
        return message;
    }

    private static async Task AssertNothingMoreAsync(RoomSubscription subscription)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
        try
        {
            await foreach (var message in subscription.ReadAllAsync(cts.Token))
            {
                Assert.Fail($"unexpected extra message {message}");
            }
        }
        catch (OperationCanceledException)
        {
        }
    }
}

/// <summary>Keeps every log event (id, level, text) of the loggers it makes.</summary>
internal sealed class CapturingLoggerProvider : ILoggerProvider
{
    public ConcurrentQueue<(int Id, LogLevel Level, string Message)> Events { get; } = new();

    public ILogger CreateLogger(string categoryName) => new Logger(Events);

    public void Dispose()
    {
    }

    private sealed class Logger(ConcurrentQueue<(int, LogLevel, string)> events) : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => true;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            events.Enqueue((eventId.Id, logLevel, formatter(state, exception)));
    }
}
