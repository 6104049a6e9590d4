using System.Text.Json;
using System.Threading.Channels;
using Bridge.Client;

namespace Bridge.Cli.Commands;

/// <summary>
/// <c>bridgectl sub</c>: joins rooms through a worker and prints each message as one JSON line (the envelope's fields),
/// in seq order per room, across reconnects (<see cref="RoomSubscription.ReadAllAsync"/>).
/// </summary>
internal static class SubCommand
{
    public const string Usage = """
          sub ROOM [ROOM..] [--since SEQ] [--count N] [--for 30s]
                                  join rooms and print each message as a JSON line (--since: resume one room after SEQ);
                                  stops after N messages, after --for, or on Ctrl-C
        """;

    private static readonly JsonSerializerOptions Json = new() { PropertyNamingPolicy = JsonNamingPolicy.CamelCase, DefaultIgnoreCondition = System.Text.Json.Serialization.JsonIgnoreCondition.WhenWritingNull };

    public static async Task<int> RunAsync(CliArgs args, CancellationToken cancellationToken)
    {
        if (args.Positional.Count == 0)
        {
            throw new UsageException("sub needs at least one ROOM");
        }

        var since = args.ULong("since");
        if (since is not null && args.Positional.Count > 1)
        {
            throw new UsageException("--since resumes one room: give one ROOM with it");
        }

        var count = args.Int("count", int.MaxValue, min: 1);
        using var limit = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        if (args.Has("for"))
        {
            limit.CancelAfter(args.Duration("for", TimeSpan.FromSeconds(30)));
        }

        await using var client = await WorkerClient.ConnectAsync(args, cancellationToken);
        var messages = Channel.CreateBounded<BridgeMessage>(1024);
        var readers = new List<Task>();
        foreach (var room in args.Positional)
        {
            RoomSubscription subscription;
            try
            {
                subscription = await client.JoinAsync(room, since, limit.Token);
            }
            catch (BridgeException ex)
            {
                throw new CliFailure($"could not join {room}: {ex.Code}: {ex.Message}");
            }
            catch (ArgumentException ex)
            {
                throw new UsageException(ex.Message);
            }

            if (subscription.LastJoin is { } join)
            {
                Console.Error.WriteLine($"joined {join.Room} at seq {join.Seq} (replayed {join.Replayed}{(join.Truncated ? ", truncated: older messages are gone" : "")})");
            }

            readers.Add(CopyAsync(subscription, messages.Writer, limit.Token));
        }

        var printed = 0;
        try
        {
            await foreach (var m in messages.Reader.ReadAllAsync(limit.Token))
            {
                Console.Out.WriteLine(JsonSerializer.Serialize(new Line(m.Type, m.Room, m.Id, m.Seq, m.Timestamp.ToUnixTimeMilliseconds(), m.From, m.Payload), Json));
                if (++printed >= count)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            // --for ran out
        }

        await limit.CancelAsync();
        await Task.WhenAll(readers.Select(r => r.ContinueWith(_ => { }, TaskScheduler.Default)));
        return 0;
    }

    private static async Task CopyAsync(RoomSubscription subscription, ChannelWriter<BridgeMessage> writer, CancellationToken cancellationToken)
    {
        await foreach (var m in subscription.ReadAllAsync(cancellationToken))
        {
            await writer.WriteAsync(m, cancellationToken);
        }
    }

    private sealed record Line(string Type, string Room, string? Id, ulong Seq, long Ts, string? From, JsonElement? Payload);
}
