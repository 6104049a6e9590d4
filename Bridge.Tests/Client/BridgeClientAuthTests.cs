using System.Collections.Concurrent;
using Bridge.Client;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>The .NET client's token handling against a real worker that requires JWTs (its own class: runs beside the others).</summary>
public sealed class BridgeClientAuthTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>
{
    [Fact]
    public async Task Token_expiry_4001_makes_the_client_fetch_a_new_token_and_resume()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var room = Names.Room("tk");
        var issued = 0;
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(worker.WebSocketUrl, BridgeFormat.Json, o =>
        {
            o.TokenProvider = _ =>
            {
                // The first token runs out within ~2-3 s (exp has whole seconds), the next ones last.
                var lifetime = Interlocked.Increment(ref issued) == 1 ? TimeSpan.FromSeconds(3) : TimeSpan.FromMinutes(10);
                return ValueTask.FromResult<string?>(tokens.Create("alice", expiresIn: lifetime, subRooms: [room]));
            };
            o.RefreshBeforeExpiry = TimeSpan.Zero; // no auth.refresh: let the server close with 4001
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();
        Assert.Equal("alice", client.User);
        var subscription = await client.JoinAsync(room);

        await using var publisher = NewClient(worker.WebSocketUrl, BridgeFormat.Json, o =>
            o.TokenProvider = _ => ValueTask.FromResult<string?>(tokens.Create("bob", pubRooms: [room])));
        await publisher.ConnectAsync();
        var before = await publisher.PublishAsync(room, "chat.message", new { text = "before" });
        await Eventually.TrueAsync(() => states.Any(s => s.CloseCode == CloseCodes.TokenExpired), TimeSpan.FromSeconds(10), "closed with 4001");
        var during = await publisher.PublishAsync(room, "chat.message", new { text = "during" }); // maybe while reconnecting
        await Eventually.TrueAsync(() => client.State == ConnectionState.Open, WaitLimit);
        var after = await publisher.PublishAsync(room, "chat.message", new { text = "after" });

        var messages = await ReadAsync(subscription, 3);
        Assert.Equal([before.Seq, during.Seq, after.Seq], messages.Select(m => m.Seq));
        Assert.Equal("bob", messages[0].From);
        Assert.Equal(2, Volatile.Read(ref issued));
        var reconnect = Assert.Single(states, s => s.State == ConnectionState.Reconnecting);
        Assert.Equal(CloseCodes.TokenExpired, reconnect.CloseCode);
        Assert.Equal(TimeSpan.Zero, reconnect.Delay); // a new token: at once, no backoff
    }

    [Fact]
    public async Task A_token_is_renewed_with_auth_refresh_before_it_expires_and_the_connection_stays()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var issued = 0;
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(worker.WebSocketUrl, BridgeFormat.MessagePack, o =>
        {
            o.TokenProvider = _ =>
            {
                Interlocked.Increment(ref issued);
                return ValueTask.FromResult<string?>(tokens.Create("carol", expiresIn: TimeSpan.FromSeconds(3)));
            };
            o.RefreshBeforeExpiry = TimeSpan.FromSeconds(2);
        });
        client.StateChanged += (_, e) => states.Enqueue(e);
        await client.ConnectAsync();
        var connection = client.ConnectionId;

        // Past the first token's expiry (≤ 3 s): without auth.refresh the server would have closed with 4001.
        await Task.Delay(TimeSpan.FromSeconds(4));
        Assert.True(Volatile.Read(ref issued) >= 2, $"tokens issued: {issued}");
        Assert.Equal([ConnectionState.Connecting, ConnectionState.Open], states.Select(s => s.State));
        Assert.Equal(connection, client.ConnectionId);
        var ack = await client.PublishAsync("user.carol", "note.saved", new { ok = true });
        Assert.True(ack.Seq > 0);
    }

    [Fact]
    public async Task A_refused_token_without_a_new_one_closes_the_client_for_good()
    {
        using var tokens = new Tokens();
        await using var worker = await WorkerHost.StartAsync(nats.Server, tokens.WorkerSettings());
        var expired = tokens.Create("dave", expiresIn: TimeSpan.FromMinutes(-5), notBefore: DateTime.UtcNow.AddMinutes(-10));
        var asked = 0;
        var states = new ConcurrentQueue<ConnectionStateChangedEventArgs>();
        await using var client = NewClient(worker.WebSocketUrl, BridgeFormat.Json, o => o.TokenProvider = _ =>
        {
            Interlocked.Increment(ref asked);
            return ValueTask.FromResult<string?>(expired);
        });
        client.StateChanged += (_, e) => states.Enqueue(e);

        var refused = await Assert.ThrowsAsync<BridgeException>(() => client.ConnectAsync().WaitAsync(WaitLimit));
        Assert.Equal(ErrorCodes.Unauthorized, refused.Code);
        Assert.Equal(ConnectionState.Closed, client.State);
        Assert.Equal(401, states.Last().HttpStatus);
        Assert.Equal(2, Volatile.Read(ref asked)); // once to connect, once after the 401: same token, so no retry
        Assert.Equal(ErrorCodes.Unauthorized, (await Assert.ThrowsAsync<BridgeException>(() => client.PublishAsync("user.dave", "a.b", 1))).Code);
    }
}
