using System.Collections.Concurrent;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Bridge.Client;
using Bridge.Contracts;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using static Bridge.Tests.Client.BridgeClientTests;

namespace Bridge.Tests.Client;

/// <summary>
/// Frames the real worker never sends (a repeated or older seq) from a scripted WebSocket server on loopback Kestrel:
/// the only way to show that the client itself drops them.
/// </summary>
public sealed class BridgeClientScriptedServerTests
{
    [Fact]
    public async Task Duplicate_and_older_seqs_are_dropped_and_a_4008_resumes_from_the_last_seq_delivered()
    {
        var joins = new ConcurrentQueue<JsonObject>();
        var connections = 0;
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        await using var app = builder.Build();
        app.UseWebSockets();
        app.Map("/ws", async (HttpContext context) =>
        {
            using var socket = await context.WebSockets.AcceptWebSocketAsync(Subprotocols.Json);
            var n = Interlocked.Increment(ref connections);
            await SendAsync(socket, """{"type":"welcome","payload":{"connectionId":"c","serverId":"scripted","heartbeatMs":30000,"protocol":1,"user":"anonymous"}}""");
            var join = await ReceiveAsync(socket);
            joins.Enqueue(join!);
            if (n == 1)
            {
                await SendAsync(socket, """{"type":"room.joined","room":"dup","seq":10,"payload":{"replayed":0,"truncated":false}}""");
                foreach (var seq in new[] { 11, 11, 9, 12 })
                {
                    await SendAsync(socket, $$$"""{"type":"chat.message","room":"dup","seq":{{{seq}}},"ts":1767225600000,"payload":{"seq":{{{seq}}}}}""");
                }

                await socket.CloseOutputAsync((WebSocketCloseStatus)CloseCodes.SlowConsumer, "slow consumer: send queue full", CancellationToken.None);
            }
            else
            {
                await SendAsync(socket, """{"type":"chat.message","room":"dup","seq":12,"ts":1767225600000,"payload":{"seq":12}}""");
                await SendAsync(socket, """{"type":"room.joined","room":"dup","seq":12,"payload":{"replayed":0,"truncated":false}}""");
                await SendAsync(socket, """{"type":"chat.message","room":"dup","seq":13,"ts":1767225600000,"payload":{"seq":13}}""");
            }

            while (await ReceiveAsync(socket) is not null)
            {
            }
        });
        await app.StartAsync();
        var url = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

        await using var client = NewClient(url, BridgeFormat.Json, o => o.ReconnectMinDelay = TimeSpan.FromMilliseconds(20));
        await client.ConnectAsync();
        var subscription = await client.JoinAsync("dup");
        var messages = await ReadAsync(subscription, 3);

        Assert.Equal([11UL, 12UL, 13UL], messages.Select(m => m.Seq));
        Assert.Equal(2, connections);
        Assert.Null(joins.First()["payload"]); // a first join without since is live
        Assert.Equal(12, joins.Last()["payload"]!["since"]!.GetValue<int>()); // the resume asks for what came after 12
    }

    private static Task SendAsync(WebSocket socket, string json) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, CancellationToken.None);

    private static async Task<JsonObject?> ReceiveAsync(WebSocket socket)
    {
        var buffer = new byte[64 * 1024];
        var count = 0;
        while (true)
        {
            WebSocketReceiveResult result;
            try
            {
                result = await socket.ReceiveAsync(new ArraySegment<byte>(buffer, count, buffer.Length - count), CancellationToken.None);
            }
            catch (WebSocketException)
            {
                return null;
            }

            if (result.MessageType == WebSocketMessageType.Close)
            {
                return null;
            }

            count += result.Count;
            if (result.EndOfMessage)
            {
                return JsonNode.Parse(buffer.AsSpan(0, count))!.AsObject();
            }
        }
    }
}
