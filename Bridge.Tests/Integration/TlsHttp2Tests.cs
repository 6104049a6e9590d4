using System.Net;
using System.Net.Security;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Bridge.Contracts;
using Bridge.Tests.Infrastructure;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Bridge.Tests.Integration;

/// <summary>
/// The worker on Kestrel with TLS (a self-signed certificate made here) and HTTP/1.1 + HTTP/2 on one port, as
/// docs/protocol.md §1.2 describes: a WebSocket over HTTP/2 (RFC 8441 extended CONNECT, .NET's ClientWebSocket with
/// HttpVersion 2.0), over HTTP/1.1 upgrade, and SSE over HTTP/2, each carrying a room message.
/// </summary>
public sealed class TlsHttp2Tests(NatsServerFixture nats) : IClassFixture<NatsServerFixture>, IDisposable
{
    private readonly X509Certificate2 _certificate = SelfSigned();

    [Theory]
    [InlineData("2.0", HttpStatusCode.OK)]
    [InlineData("1.1", HttpStatusCode.SwitchingProtocols)]
    public async Task A_WebSocket_over_TLS_joins_and_receives_on_HTTP_2_and_HTTP_1_1(string version, HttpStatusCode handshake)
    {
        await using var worker = await StartAsync();
        var room = Names.Room("h2");
        using var socket = new ClientWebSocket();
        socket.Options.HttpVersion = Version.Parse(version);
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.AddSubProtocol(Subprotocols.Json);
        using var invoker = new HttpMessageInvoker(Handler());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await socket.ConnectAsync(new Uri($"wss://{worker.HttpUrl.Authority}/ws"), invoker, cts.Token);

        // 200 to an extended CONNECT on HTTP/2; 101 to an upgrade on HTTP/1.1.
        Assert.Equal(handshake, socket.HttpStatusCode);
        Assert.Equal(Subprotocols.Json, socket.SubProtocol);
        await SendAsync(socket, $$"""{"type":"room.join","room":"{{room}}"}""", cts.Token);
        await ReceiveUntilAsync(socket, """"type":"room.joined"""", cts.Token);
        await SendAsync(socket, $$$"""{"type":"chat.message","room":"{{{room}}}","id":"m-1","payload":{"text":"over {{{version}}}"}}""", cts.Token);
        var message = await ReceiveUntilAsync(socket, """"type":"chat.message"""", cts.Token);
        Assert.Contains($"\"text\":\"over {version}\"", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_SSE_stream_runs_over_HTTP_2_with_TLS()
    {
        await using var worker = await StartAsync();
        var room = Names.Room("h2");
        using var http = new HttpClient(Handler()) { DefaultRequestVersion = HttpVersion.Version20, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await http.GetAsync(new Uri(worker.HttpUrl, $"/sse?rooms={room}"), HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        string? line;
        while ((line = await reader.ReadLineAsync(cts.Token)) != "event: room.joined")
        {
            Assert.NotNull(line);
        }
    }

    private async Task<WorkerHost> StartAsync() =>
        await WorkerHost.StartAsync(nats.Server, builder => builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Listen(IPAddress.Loopback, 0, listen =>
            {
                listen.Protocols = HttpProtocols.Http1AndHttp2;
                listen.UseHttps(_certificate);
            })));

    /// <summary>Trusts exactly this test's certificate.</summary>
    private SocketsHttpHandler Handler() => new()
    {
        SslOptions = new SslClientAuthenticationOptions
        {
            RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetCertHashString() == _certificate.GetCertHashString(),
        },
    };

    private static Task SendAsync(ClientWebSocket socket, string json, CancellationToken cancellationToken) =>
        socket.SendAsync(System.Text.Encoding.UTF8.GetBytes(json), WebSocketMessageType.Text, true, cancellationToken);

    private static async Task<string> ReceiveUntilAsync(ClientWebSocket socket, string contains, CancellationToken cancellationToken)
    {
        var buffer = new byte[64 * 1024];
        while (true)
        {
            var result = await socket.ReceiveAsync(buffer, cancellationToken);
            Assert.NotEqual(WebSocketMessageType.Close, result.MessageType);
            var text = System.Text.Encoding.UTF8.GetString(buffer, 0, result.Count);
            if (text.Contains(contains, StringComparison.Ordinal))
            {
                return text;
            }
        }
    }

    private static X509Certificate2 SelfSigned()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-5), DateTimeOffset.UtcNow.AddHours(1));
        // Through PFX so the private key is usable by SslStream on Linux.
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pfx), null);
    }

    public void Dispose() => _certificate.Dispose();
}
