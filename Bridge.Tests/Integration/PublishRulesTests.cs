using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Bridge.Contracts;
using Bridge.Testing;
using Bridge.Tests.Infrastructure;

namespace Bridge.Tests.Integration;

/// <summary>
/// The publish rules have one home (Publishing/PublishService): a message they refuse gets the same error code on a
/// connection (an <c>error</c> frame), over <c>POST /api/rooms/{room}/messages</c> (400) and from the backend API's
/// publish (400), and nothing is stored; a message they accept is stored over each of the three.
/// </summary>
public sealed class PublishRulesTests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(30) };
    private readonly Tokens _tokens = new();
    private readonly string _key = ApiClient.NewKey();

    public void Dispose() => _tokens.Dispose();

    [Fact]
    public async Task A_message_the_rules_refuse_gets_the_same_code_over_websocket_http_and_the_backend_api_and_is_not_stored()
    {
        await using var worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings([.. ApiClient.KeySettings("tests", _key)]));
        var token = _tokens.Create("alice", subRooms: [">"], pubRooms: [">"]);
        await using var client = await TestClient.ConnectAsync(new Uri($"{worker.WebSocketUrl}?access_token={token}"));
        await client.FirstFrame;
        await using var api = ApiClient.WithKey(worker.HttpUrl, _key);
        var room = Names.Room("rules");
        var refused = new (string Type, string? Id, string Code)[]
        {
            (MessageTypes.Ack, null, ErrorCodes.UnknownType), // reserved for the gateway
            ("bad type!", null, ErrorCodes.InvalidType),
            ("chat.message", "has space", ErrorCodes.InvalidId),
        };
        foreach (var (type, id, code) in refused)
        {
            await client.SendAsync(new(Message(type, id)) { ["room"] = room });
            var frame = await client.WaitForAsync(f => f.Type == MessageTypes.Error, TimeSpan.FromSeconds(30));
            Assert.Equal(code, frame.ErrorCode);

            var (status, body) = await HttpPublishAsync(worker, token, room, type, id);
            Assert.True(status == 400 && body["code"]?.GetValue<string>() == code, $"HTTP {type}/{id}: {status} {body}");

            var answer = await api.CallAsync("publish", new Dictionary<string, object?>(Message(type, id)) { ["room"] = room });
            Assert.True(answer.Status == 400 && answer.Code == code, $"API {type}/{id}: {answer}");
        }

        Assert.Empty((await api.OkAsync("history", new { room }))["messages"]!.AsArray());

        // The same message, well-formed, is stored by each of the three.
        await client.PublishAsync(room, new { n = 2 }, id: "ws-1");
        Assert.True((await client.WaitForAsync(f => f.Type == MessageTypes.Ack && f.Id == "ws-1", TimeSpan.FromSeconds(30))).Seq > 0);
        Assert.Equal(200, (await HttpPublishAsync(worker, token, room, "chat.message", "http-1")).Status);
        Assert.Equal(200, (await api.CallAsync("publish", new { room, type = "chat.message", id = "api-1", payload = new { n = 2 } })).Status);
        var stored = (await api.OkAsync("history", new { room }))["messages"]!.AsArray();
        Assert.Equal(["ws-1", "http-1", "api-1"], stored.Select(m => m!["id"]!.GetValue<string>()));
    }

    // The envelope's fields, with no id key when there is none (an id of null is a bad frame, not a rule).
    private static Dictionary<string, object?> Message(string type, string? id)
    {
        var message = new Dictionary<string, object?> { ["type"] = type, ["payload"] = new { n = 1 } };
        if (id is not null)
        {
            message["id"] = id;
        }

        return message;
    }

    private static async Task<(int Status, JsonNode Body)> HttpPublishAsync(WorkerHost worker, string token, string room, string type, string? id)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri(worker.HttpUrl, $"/api/rooms/{room}/messages"))
        {
            Content = new StringContent(JsonSerializer.Serialize(Message(type, id)), Encoding.UTF8, "application/json"),
        };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        using var response = await Http.SendAsync(request);
        var text = await response.Content.ReadAsStringAsync();
        return ((int)response.StatusCode, text.Length == 0 ? new JsonObject() : JsonNode.Parse(text)!);
    }
}
