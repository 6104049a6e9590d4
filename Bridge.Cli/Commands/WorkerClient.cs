using Bridge.Client;

namespace Bridge.Cli.Commands;

/// <summary>
/// A <see cref="BridgeClient"/> for <c>pub</c> and <c>sub</c>: the worker's URL (<c>--url</c>, else
/// <c>$BRIDGE_URL</c>, else <c>ws://127.0.0.1:8080/ws</c>; an http(s) address of the worker means its <c>/ws</c>),
/// the token (<c>--token</c>, else <c>$BRIDGE_TOKEN</c>; none for a development worker), the subprotocol, and a
/// connect that gives up after <c>--timeout</c> with the last refusal the client saw. Called after the command has
/// read its own options: unknown ones are refused here, before connecting.
/// </summary>
internal static class WorkerClient
{
    public const string Options = """
        pub/sub options: --url ws://host:port/ws (or http(s)://host:port; default $BRIDGE_URL, else ws://127.0.0.1:8080/ws)
                         --token JWT (default $BRIDGE_TOKEN; none for a development worker)  --msgpack  --timeout 10s
        """;

    public static async Task<BridgeClient> ConnectAsync(CliArgs args, CancellationToken cancellationToken)
    {
        var url = Url(args.String("url") ?? Environment.GetEnvironmentVariable("BRIDGE_URL") ?? "ws://127.0.0.1:8080/ws");
        var token = args.String("token") ?? Environment.GetEnvironmentVariable("BRIDGE_TOKEN");
        var timeout = args.Duration("timeout", TimeSpan.FromSeconds(10));
        var format = args.Has("msgpack") ? BridgeFormat.MessagePack : BridgeFormat.Json;
        args.RejectUnknown(); // the command read its own options first: a typo stops it before it connects
        var client = new BridgeClient(new BridgeClientOptions
        {
            Uri = url,
            Format = format,
            TokenProvider = string.IsNullOrEmpty(token) ? null : _ => ValueTask.FromResult<string?>(token),
        });
        ConnectionStateChangedEventArgs? last = null;
        client.StateChanged += (_, e) => last = e;
        try
        {
            await client.ConnectAsync(cancellationToken).WaitAsync(timeout, cancellationToken);
            return client;
        }
        catch (Exception ex) when (ex is TimeoutException or BridgeException)
        {
            await client.DisposeAsync();
            var why = last is null ? ex.Message
                : last.HttpStatus is { } status ? $"the worker answered HTTP {status}{(last.Reason is { Length: > 0 } r ? ": " + r : "")}"
                : last.CloseCode is { } code ? $"closed with {code}{(last.Reason is { Length: > 0 } r2 ? ": " + r2 : "")}"
                : last.Reason ?? ex.Message;
            throw new CliFailure($"could not connect to {url}: {why}");
        }
    }

    private static Uri Url(string text)
    {
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri))
        {
            throw new UsageException($"--url '{text}' is not an absolute URL");
        }

        var b = new UriBuilder(uri);
        b.Scheme = uri.Scheme switch
        {
            "http" or "ws" => "ws",
            "https" or "wss" => "wss",
            _ => throw new UsageException($"--url '{text}' must be ws(s):// or http(s)://"),
        };
        b.Port = uri.IsDefaultPort ? -1 : uri.Port;
        if (uri.AbsolutePath is "" or "/")
        {
            b.Path = "/ws";
        }

        return b.Uri;
    }
}
