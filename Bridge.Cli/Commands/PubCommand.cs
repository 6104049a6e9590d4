using System.Text.Json;
using Bridge.Client;

namespace Bridge.Cli.Commands;

/// <summary><c>bridgectl pub</c>: one message through a worker (<see cref="BridgeClient.PublishAsync{T}"/>), stored once, acked with its seq.</summary>
internal static class PubCommand
{
    public const string Usage = """
          pub ROOM [PAYLOAD] [--type chat.message] [--id ID]
                                  publish through a worker; PAYLOAD is JSON ('{"text":"hi"}', '"a string"', 42);
                                  prints the stored seq. The same id within 2 minutes is stored once (duplicate: true)
        """;

    public static async Task<int> RunAsync(CliArgs args, CancellationToken cancellationToken)
    {
        var room = args.Positional.Count is 1 or 2 ? args.Positional[0] : throw new UsageException("pub needs ROOM and at most one PAYLOAD");
        var type = args.String("type") ?? "message";
        var id = args.String("id");
        JsonElement payload;
        try
        {
            payload = JsonDocument.Parse(args.Positional.Count == 2 ? args.Positional[1] : "null").RootElement.Clone();
        }
        catch (JsonException ex)
        {
            throw new UsageException($"PAYLOAD must be one JSON value (a string needs its quotes: '\"hi\"'): {ex.Message}");
        }

        await using var client = await WorkerClient.ConnectAsync(args, cancellationToken);
        try
        {
            var ack = await client.PublishAsync(room, type, payload, id, cancellationToken);
            Console.Out.WriteLine($"stored as seq {ack.Seq} in {ack.Room} (id {ack.Id}{(ack.Duplicate ? ", duplicate: stored before" : "")})");
            return 0;
        }
        catch (BridgeException ex)
        {
            throw new CliFailure($"not published: {ex.Code}: {ex.Message}");
        }
        catch (ArgumentException ex)
        {
            throw new UsageException(ex.Message);
        }
    }
}
