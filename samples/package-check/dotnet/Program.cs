// Uses both packages against a running worker: connect, join, publish, read the message back.
using Bridge.Client;
using Bridge.Contracts;

var url = new Uri(args[0]);
var room = "packages." + Guid.NewGuid().ToString("N")[..8];
if (!RoomName.IsValid(room))
{
    throw new InvalidOperationException("Bridge.Contracts says the room name is invalid");
}

await using var client = new BridgeClient(new BridgeClientOptions { Uri = url, Format = BridgeFormat.MessagePack });
using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
await client.ConnectAsync(timeout.Token);
var subscription = await client.JoinAsync(room, cancellationToken: timeout.Token);
var ack = await client.PublishAsync(room, "check.message", new { from = "the Bridge.Client package" }, cancellationToken: timeout.Token);
await foreach (var message in subscription.ReadAllAsync(timeout.Token))
{
    if (message.Id == ack.Id)
    {
        Console.WriteLine($"dotnet sample: {Subprotocols.MessagePack} round trip, seq {message.Seq}");
        return 0;
    }
}

return 1;
