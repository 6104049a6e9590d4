using Bridge.Testing;

namespace Bridge.Tests.Infrastructure;

/// <summary>One nats-server per test class (classes run in parallel); each test uses its own rooms.</summary>
public sealed class NatsServerFixture : IAsyncLifetime
{
    public NatsServerProcess Server { get; private set; } = null!;

    public async Task InitializeAsync() => Server = await NatsServerProcess.StartAsync();

    public async Task DisposeAsync() => await Server.DisposeAsync();
}
