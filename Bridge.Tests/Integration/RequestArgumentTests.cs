using System.Net.WebSockets;
using Xunit.Abstractions;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using static Bridge.Tests.Infrastructure.Raw;

namespace Bridge.Tests.Integration;

/// <summary>
/// Every argument of every request type, sent with invalid UTF-8 (and escaped lone surrogates), every wrong JSON
/// kind and extreme sizes, on both subprotocols: each gets its one documented error frame, the connection stays
/// open, the next request is answered, and nothing is stored (issue 12, kinds 1 and 4).
/// </summary>
public sealed class RequestArgumentTests(NatsServerFixture nats, ITestOutputHelper output) : IClassFixture<NatsServerFixture>, IAsyncLifetime, IDisposable
{
    private const string Alive = "a.alive";

    // Large enough to be extreme, small enough that every frame stays under the default 64 KiB frame limit.
    private static readonly string Huge = new('a', 60_000);

    private readonly Tokens _tokens = new();
    private WorkerHost _worker = null!;
    private SubjectObserver _stored = null!;

    public async Task InitializeAsync()
    {
        _worker = await WorkerHost.StartAsync(nats.Server, _tokens.WorkerSettings(("Bridge:Presence:Rooms:0", "p.>")));
        _stored = await SubjectObserver.StartAsync(nats.Server.Url, "rooms.>");
    }

    public async Task DisposeAsync()
    {
        await _stored.DisposeAsync();
        await _worker.DisposeAsync();
    }

    public void Dispose() => _tokens.Dispose();

    /// <summary>One bad request and the error it must get; <c>JsonOnly</c> for what only the JSON envelope has (<c>enc</c>).</summary>
    public sealed record Case(string Name, RawValue Frame, string Code, bool JsonOnly = false)
    {
        public override string ToString() => Name;
    }

    /// <summary>Strings that are not Unicode text: each invalid UTF-8 sequence, and a JSON-escaped lone surrogate.</summary>
    private static IEnumerable<(string Name, RawValue Value)> BadText(string prefix) =>
        InvalidUtf8.Select(b => ($"bytes {Convert.ToHexString(b)}", Bad(prefix, b)))
            .Append(("escaped lone surrogate", LoneSurrogate(prefix)));

    /// <summary>A value of every JSON kind but the ones named (which the argument accepts).</summary>
    private static IEnumerable<(string Name, RawValue Value)> WrongKinds(params string[] except) =>
        new (string Name, RawValue Value)[]
        {
            ("integer", N(5)), ("negative", N(-1)), ("float", F(1.5)), ("bool", B(true)), ("array", L(S("a.x"))),
            ("object", M(("a", N(1)))), ("huge number", HugeNumber), ("string", S("a.x")),
        }.Where(k => !except.Contains(k.Name));

    private static RawValue Frame(string type, string? room, RawValue? payload = null, string? id = "r1", params (string, RawValue)[] more)
    {
        var entries = new List<(string, RawValue)> { ("type", S(type)) };
        if (room is not null)
        {
            entries.Add(("room", S(room)));
        }

        if (id is not null)
        {
            entries.Add(("id", S(id)));
        }

        if (payload is not null)
        {
            entries.Add(("payload", payload));
        }

        entries.AddRange(more);
        return M([.. entries]);
    }

    /// <summary>The frame of <paramref name="type"/> with one envelope field replaced.</summary>
    private static RawValue WithField(string type, string field, RawValue value)
    {
        var room = type == MessageTypes.PresenceQuery ? "p.x" : type == MessageTypes.RoomLeave ? "a.never" : "a.x";
        var entries = new List<(string, RawValue)> { ("type", S(type)), ("room", S(room)), ("id", S("r1")) };
        entries.RemoveAll(e => e.Item1 == field);
        entries.Add((field, value));
        return M([.. entries]);
    }

    public static IEnumerable<Case> Cases()
    {
        string[] roomTypes = [MessageTypes.RoomJoin, MessageTypes.RoomLeave, MessageTypes.RoomSync, MessageTypes.PresenceQuery, "chat.message"];
        string[] allTypes = [.. roomTypes, MessageTypes.AuthRefresh, MessageTypes.Ping];

        // Envelope fields of every request type.
        foreach (var type in allTypes)
        {
            foreach (var field in new[] { "type", "room", "id" })
            {
                var target = field == "type" ? type : $"{type} {field}";
                foreach (var (name, value) in BadText(field switch { "room" => "a.", "type" => type, _ => "x" }))
                {
                    yield return new($"{target}: {name}", WithField(type, field, value), ErrorCodes.BadFrame);
                }

                foreach (var (name, value) in WrongKinds("string"))
                {
                    yield return new($"{target}: {name}", WithField(type, field, value), ErrorCodes.BadFrame);
                }
            }
        }

        // Extreme sizes of the envelope fields: the name rules refuse them.
        foreach (var type in roomTypes)
        {
            yield return new($"{type} room: 60,000 characters", WithField(type, "room", S(Huge)), ErrorCodes.InvalidRoom);
        }

        yield return new("type: 60,000 characters", WithField("x", "type", S(Huge)), ErrorCodes.InvalidType);
        yield return new("publish id: 60,000 characters", WithField("chat.message", "id", S(Huge)), ErrorCodes.InvalidId);
        yield return new("room.leave id: 60,000 characters (only a ref)", WithField(MessageTypes.RoomLeave, "id", S(Huge)), ErrorCodes.NotJoined);
        yield return new("bridge.ping id: 60,000 characters", WithField(MessageTypes.Ping, "id", S(Huge)), ErrorCodes.InvalidId);
        yield return new("bridge.ping id: empty", WithField(MessageTypes.Ping, "id", S("")), ErrorCodes.InvalidId);
        yield return new("bridge.ping id: null", WithField(MessageTypes.Ping, "id", Null), ErrorCodes.MissingField);
        yield return new("bridge.pong is reserved", Frame(MessageTypes.Pong, "a.x"), ErrorCodes.UnknownType);
        yield return new("presence.update is reserved", Frame(MessageTypes.PresenceUpdate, "p.x", M(("user", S("alice")))), ErrorCodes.UnknownType);

        // room.join since (single form and batch entries).
        foreach (var (name, value) in BadText("5"))
        {
            yield return new($"room.join since: {name}", Frame(MessageTypes.RoomJoin, "a.x", M(("since", value))), ErrorCodes.BadFrame);
            yield return new($"room.join rooms[].since: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(M(("room", S("a.x")), ("since", value)))))), ErrorCodes.BadFrame);
        }

        var badSince = WrongKinds("integer").Append(("numeric string", S("5"))).Append(("2^64", new RawValue.Literal("18446744073709551616", F(18446744073709551616d))))
            .Append(("-0", new RawValue.Literal("-0", F(-0.0)))).Append(("1e2", new RawValue.Literal("1e2", F(100.5))))
            .Append(("300 digits", new RawValue.Literal("1" + new string('0', 299), F(1e299))))
            .Append(("whole float 1.0", new RawValue.Literal("1.0", F(1.0)))).Append(("whole float 1e2", new RawValue.Literal("1e2", F(100.0))));
        foreach (var (name, value) in badSince)
        {
            yield return new($"room.join since: {name}", Frame(MessageTypes.RoomJoin, "a.x", M(("since", value))), ErrorCodes.InvalidArgument);
            yield return new($"room.join rooms[].since: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(M(("room", S("a.x")), ("since", value)))))), ErrorCodes.InvalidArgument);
        }

        // room.join rooms.
        foreach (var (name, value) in BadText("a."))
        {
            yield return new($"room.join rooms: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", value))), ErrorCodes.BadFrame);
            yield return new($"room.join rooms[]: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(value)))), ErrorCodes.BadFrame);
            yield return new($"room.join rooms[].room: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(M(("room", value)))))), ErrorCodes.BadFrame);
            yield return new($"room.join rooms[] key: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(MK(value, S("a.x")))))), ErrorCodes.BadFrame);
        }

        foreach (var (name, value) in WrongKinds("array").Append(("empty array", L())))
        {
            yield return new($"room.join rooms: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", value))), ErrorCodes.InvalidArgument);
        }

        foreach (var (name, value) in WrongKinds("object").Append(("null", Null)).Append(("empty object", M())))
        {
            yield return new($"room.join rooms[]: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(value)))), ErrorCodes.InvalidRoom);
        }

        foreach (var (name, value) in WrongKinds("string").Append(("null", Null)).Append(("empty string", S(""))))
        {
            yield return new($"room.join rooms[].room: {name}", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(M(("room", value)))))), ErrorCodes.InvalidRoom);
        }

        yield return new("room.join rooms[].room: 60,000 characters", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(M(("room", S(Huge))))))), ErrorCodes.InvalidRoom);
        yield return new("room.join rooms[].room: emoji cut at 64 characters", Frame(MessageTypes.RoomJoin, null, M(("rooms", L(M(("room", S(new string('a', 50) + "\U0001F600\U0001F600\U0001F600\U0001F600\U0001F600\U0001F600\U0001F600"))))))), ErrorCodes.InvalidRoom);
        yield return new("room.join rooms: more entries than a connection may join",
            Frame(MessageTypes.RoomJoin, null, M(("rooms", L([.. Enumerable.Repeat(M(("room", S("a.x"))), 1001)])))), ErrorCodes.TooManyRooms);

        // room.sync limit.
        foreach (var (name, value) in BadText("5"))
        {
            yield return new($"room.sync limit: {name}", Frame(MessageTypes.RoomSync, "a.x", M(("limit", value))), ErrorCodes.BadFrame);
        }

        foreach (var (name, value) in WrongKinds("integer").Append(("numeric string", S("5"))).Append(("0", N(0))).Append(("101", N(101))).Append(("int64 max", N(long.MaxValue))).Append(("uint64 max", U(ulong.MaxValue))).Append(("whole float 5.0", new RawValue.Literal("5.0", F(5.0)))))
        {
            yield return new($"room.sync limit: {name}", Frame(MessageTypes.RoomSync, "a.x", M(("limit", value))), ErrorCodes.InvalidArgument);
        }

        // auth.refresh token.
        foreach (var (name, value) in BadText("ey"))
        {
            yield return new($"auth.refresh token: {name}", Frame(MessageTypes.AuthRefresh, null, M(("token", value))), ErrorCodes.BadFrame);
        }

        foreach (var (name, value) in WrongKinds("string"))
        {
            yield return new($"auth.refresh token: {name}", Frame(MessageTypes.AuthRefresh, null, M(("token", value))), ErrorCodes.InvalidArgument);
        }

        yield return new("auth.refresh token: not a JWT", Frame(MessageTypes.AuthRefresh, null, M(("token", S("ey.not.a.jwt")))), ErrorCodes.Unauthorized);
        yield return new("auth.refresh token: 60,000 characters", Frame(MessageTypes.AuthRefresh, null, M(("token", S(Huge)))), ErrorCodes.Unauthorized);
        yield return new("auth.refresh token: non-ASCII", Frame(MessageTypes.AuthRefresh, null, M(("token", S("eyé.ü.\U0001F600")))), ErrorCodes.Unauthorized);

        // Publish payloads: bad text at any depth, in values and in keys.
        foreach (var (name, value) in BadText("A"))
        {
            yield return new($"publish payload: {name}", Frame("chat.message", "a.x", value), ErrorCodes.BadFrame);
            yield return new($"publish payload.s: {name}", Frame("chat.message", "a.x", M(("s", value))), ErrorCodes.BadFrame);
            yield return new($"publish payload, depth 6: {name}", Frame("chat.message", "a.x", M(("a", L(M(("b", L(L(M(("c", value)))))))))), ErrorCodes.BadFrame);
            yield return new($"publish payload key: {name}", Frame("chat.message", "a.x", M(("a", MK(value, N(1))))), ErrorCodes.BadFrame);
            yield return new($"unknown envelope key: {name}", Frame("chat.message", "a.x", N(1), "r1", ("x", M(("y", value)))), ErrorCodes.BadFrame);
            yield return new($"publish enc: {name}", Frame("chat.message", "a.x", S("aGk="), "r1", ("enc", value)), ErrorCodes.BadFrame, JsonOnly: true);
        }

        // Numbers MessagePack has no form for (they would arrive as Infinity), wherever they are.
        yield return new("room.join since: beyond float64", Frame(MessageTypes.RoomJoin, "a.x", M(("since", BeyondFloat64))), ErrorCodes.BadFrame, JsonOnly: true);
        yield return new("room.join since: 60,000 digits", Frame(MessageTypes.RoomJoin, "a.x", M(("since", new RawValue.Literal("1" + new string('0', 60_000), Null)))), ErrorCodes.BadFrame, JsonOnly: true);
        yield return new("room.sync limit: beyond float64", Frame(MessageTypes.RoomSync, "a.x", M(("limit", BeyondFloat64))), ErrorCodes.BadFrame, JsonOnly: true);
        yield return new("publish payload: beyond float64 at depth 3", Frame("chat.message", "a.x", M(("a", L(N(1), BeyondFloat64)))), ErrorCodes.BadFrame, JsonOnly: true);
        yield return new("publish payload: 1E+309", Frame("chat.message", "a.x", L(new RawValue.Literal("1E+309", Null))), ErrorCodes.BadFrame, JsonOnly: true);
        // A name twice in one object (the same name escaped counts): MessagePack decoders that read maps into
        // dictionaries fail on it, so it is refused like any payload one format cannot carry.
        yield return new("publish payload: a key twice", Frame("chat.message", "a.x", M(("a", N(1)), ("b", N(2)), ("a", N(3)))), ErrorCodes.BadFrame);
        yield return new("publish payload: a key twice at depth 3", Frame("chat.message", "a.x", L(M(("x", M(("k", N(1)), ("k", N(1))))))), ErrorCodes.BadFrame);
        yield return new("publish payload: a key and its escaped twin", Frame("chat.message", "a.x", new RawValue.Literal("""{"a":1,"\u0061":2}""", Null)), ErrorCodes.BadFrame, JsonOnly: true);
        yield return new("room.join payload: a key twice", Frame(MessageTypes.RoomJoin, "a.x", M(("since", N(1)), ("since", N(2)))), ErrorCodes.BadFrame);
        yield return new("publish payload nested 33 deep", Frame("chat.message", "a.x", Enumerable.Range(0, 33).Aggregate(N(1), (v, _) => L(v))), ErrorCodes.BadFrame);
        foreach (var (name, value) in WrongKinds())
        {
            yield return new($"publish enc: {name}", Frame("chat.message", "a.x", S("aGk="), "r1", ("enc", value)), ErrorCodes.BadFrame, JsonOnly: true);
        }

        foreach (var (name, value) in WrongKinds("string"))
        {
            yield return new($"publish base64 payload: {name}", Frame("chat.message", "a.x", value, "r1", ("enc", S("base64"))), ErrorCodes.BadFrame, JsonOnly: true);
        }

        yield return new("publish base64 payload: escaped lone surrogate", Frame("chat.message", "a.x", LoneSurrogate("aGk"), "r1", ("enc", S("base64"))), ErrorCodes.BadFrame, JsonOnly: true);
        yield return new("publish base64 payload: not base64", Frame("chat.message", "a.x", S("@@"), "r1", ("enc", S("base64"))), ErrorCodes.BadFrame, JsonOnly: true);
    }

    public static TheoryData<string> Protocols() => [Subprotocols.Json, Subprotocols.MessagePack];

    [Theory]
    [MemberData(nameof(Protocols))]
    public async Task Every_argument_of_every_request_with_bad_text_wrong_kinds_or_extreme_sizes_gets_its_error_and_the_connection_keeps_serving(string protocol)
    {
        var cases = Cases().Where(c => protocol == Subprotocols.Json || !c.JsonOnly).ToList();
        Assert.True(cases.Count > 150, $"{cases.Count} cases");
        output.WriteLine($"{cases.Count} cases on {protocol}");
        var token = _tokens.Create("alice", subRooms: ["a.>", "p.>"], pubRooms: ["a.>"]);
        await using var client = await TestClient.ConnectAsync(new Uri($"{_worker.WebSocketUrl}?access_token={token}"), protocol);
        await client.WaitForAsync(f => f.Type == MessageTypes.Welcome);
        var failures = new List<string>();
        for (var i = 0; i < cases.Count; i++)
        {
            var c = cases[i];
            var bytes = protocol == Subprotocols.Json ? c.Frame.ToJson() : c.Frame.ToMsgPack();
            // JSON goes in binary frames: the WebSocket layer itself refuses a text frame that is not UTF-8 (1007).
            await client.SendRawAsync(bytes, WebSocketMessageType.Binary);
            // The next request: a publish, answered by its ack.
            var alive = $"alive-{i}";
            await client.SendAsync(new() { ["type"] = "chat.message", ["room"] = Alive, ["id"] = alive, ["payload"] = i });
            List<Frame> answers = [];
            try
            {
                while (answers.LastOrDefault() is not { Type: MessageTypes.Ack } last || last.Id != alive)
                {
                    answers.Add(await client.NextAsync(TimeSpan.FromSeconds(20)));
                }
            }
            catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
            {
                Assert.Fail($"case {i} '{c.Name}': the next request was not answered ({ex.Message}); close status {client.Socket.CloseStatus}; seen: {string.Join(" | ", answers)}");
            }

            var errors = answers.Where(f => f.Type == MessageTypes.Error).ToList();
            var unexpected = answers.Where(f => f.Type is not (MessageTypes.Error or MessageTypes.Ack) && f.Room != Alive).ToList();
            if (errors.Count != 1 || errors[0].ErrorCode != c.Code || unexpected.Count > 0)
            {
                failures.Add($"{c.Name}: expected one {c.Code}, got [{string.Join(" | ", errors.Select(e => $"{e.ErrorCode}: {e.Payload?["message"]}"))}]"
                             + (unexpected.Count > 0 ? $" and {string.Join(" | ", unexpected)}" : ""));
            }
        }

        Assert.False(client.Closed.IsCompleted, $"closed with {client.Socket.CloseStatus}");
        Assert.True(failures.Count == 0, $"{failures.Count} of {cases.Count} cases failed:\n{string.Join('\n', failures)}");

        // Nothing but the probes was stored.
        Assert.All(await _stored.DrainAsync(), subject => Assert.Equal($"rooms.{Alive}", subject));
    }
}
