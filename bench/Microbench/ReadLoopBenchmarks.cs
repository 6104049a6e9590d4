using System.Buffers;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using BenchmarkDotNet.Attributes;
using BenchmarkDotNet.Engines;
using Bridge.Worker.Core;
using Bridge.Worker.Nats;
using Bridge.Worker.Operations;
using Bridge.Worker.Rooms;
using Microsoft.Extensions.Logging.Abstractions;
using NATS.Client.Core;
using NATS.Client.JetStream;
using NATS.Client.JetStream.Models;

namespace Bridge.Microbench;

/// <summary>
/// A real 100,000-message replay of the resume scenario's room (its headers and body) from a real nats-server
/// (<c>NATS_SERVER_BIN</c>, started here on a free port), read by NATS.Net's read loop in this process: each benchmark
/// is one whole read of the room (time per message is the pipeline's, server included), and the process's own CPU per
/// message over all of its reads is printed as <c>READ-CPU &lt;benchmark&gt; &lt;ns per message&gt;</c> at the end
/// (in the benchmark's log): what the client side of each way of reading costs. The ways:
/// <list type="bullet">
/// <item><c>ReadLoopOnly</c>: one pull of the whole room into a subscription that only counts: NATS.Net's read loop
/// (socket reads, protocol parse, the subject and reply strings) and nothing else.</item>
/// <item><c>PullsNoMessage</c>: <c>ConsumerPulls</c> as a cursor uses it (pulls of 1,024, the ack subject read, the
/// reader woken per batch), reading no message.</item>
/// <item><c>PullsRoomMessage</c>: the same with each delivery read into a <c>RoomMessage</c> as a cursor does (header
/// block, body copy and JSON check): the cursor's read up to what <c>RoomReader</c> takes.</item>
/// <item><c>BareOrderedConsumer</c>: NATS.Net's ordered consumer, as <c>resume</c>'s bare side reads the room.</item>
/// </list>
/// </summary>
[SimpleJob(RunStrategy.Monitoring, launchCount: 1, warmupCount: 3, iterationCount: 10)]
public class ReadLoopBenchmarks
{
    private const int Messages = 100_000;
    private const string Room = "bench.replay";
    private static readonly Dictionary<string, (TimeSpan Cpu, long Messages)> Cpu = [];

    private Process? _server;
    private string? _store;
    private NatsConnection _nats = null!;
    private NatsJSContext _js = null!;
    private RoomMessageReader _reader = null!;

    [GlobalSetup]
    public async Task SetupAsync()
    {
        var bin = Environment.GetEnvironmentVariable("NATS_SERVER_BIN") ?? "nats-server";
        var port = FreePort();
        _store = Directory.CreateTempSubdirectory("readloop").FullName;
        _server = Process.Start(new ProcessStartInfo(bin, $"-js -a 127.0.0.1 -p {port} -sd {_store}") { RedirectStandardError = true, RedirectStandardOutput = true })!;
        _nats = new NatsConnection(new NatsOpts { Url = $"nats://127.0.0.1:{port}" });
        for (var i = 0; ; i++)
        {
            try
            {
                await _nats.ConnectAsync();
                break;
            }
            catch (NatsException) when (i < 50)
            {
                await Task.Delay(100);
            }
        }

        _js = new NatsJSContext(_nats);
        await _js.CreateStreamAsync(new StreamConfig("ROOMS", ["rooms.>"]) { AllowDirect = true });
        var headers = new NatsHeaders { ["Bridge-Type"] = "load.tick" };
        var body = "{\"sent\":0,\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}"u8.ToArray();
        var pending = new List<Task>();
        for (var i = 0; i < Messages; i++)
        {
            pending.Add(_js.PublishAsync($"rooms.{Room}", body, headers: headers).AsTask());
            if (pending.Count == 1000)
            {
                await Task.WhenAll(pending);
                pending.Clear();
            }
        }

        await Task.WhenAll(pending);
        var meters = new MeterFactory();
        _reader = new RoomMessageReader(new MessageFallbacks(new BridgeMetrics(meters, TimeProvider.System), NullLogger<MessageFallbacks>.Instance), TimeProvider.System);
    }

    [GlobalCleanup]
    public async Task CleanupAsync()
    {
        foreach (var (name, (cpu, messages)) in Cpu)
        {
            Console.WriteLine($"READ-CPU {name} {cpu.TotalNanoseconds / messages:F0} ns per message over {messages} messages");
        }

        await _nats.DisposeAsync();
        _server?.Kill();
        _server?.WaitForExit();
        if (_store is not null)
        {
            Directory.Delete(_store, recursive: true);
        }
    }

    [Benchmark(OperationsPerInvoke = Messages)]
    public Task ReadLoopOnly() => Measured(nameof(ReadLoopOnly), async () =>
    {
        var consumer = await CreateConsumerAsync();
        var inbox = "_INBOX." + Guid.NewGuid().ToString("N");
        var sub = new CountingSub(_nats, inbox, Messages);
        await _nats.AddSubAsync(sub);
        await _nats.PublishAsync($"$JS.API.CONSUMER.MSG.NEXT.ROOMS.{consumer}", Encoding.ASCII.GetBytes($"{{\"batch\":{Messages},\"no_wait\":true}}"), replyTo: inbox + ".1");
        await sub.Done.Task;
        await sub.DisposeAsync();
        await _js.DeleteConsumerAsync("ROOMS", consumer);
    });

    /// <summary>
    /// Pulls of 1,024 as the cursor sends them (the next while more than half a pull is still to come), but sent and
    /// counted on NATS.Net's read loop itself: no reader on another thread. Against <see cref="PullsNoMessage"/>, what
    /// the hand-off from the read loop to a reader costs per delivery.
    /// </summary>
    [Benchmark(OperationsPerInvoke = Messages)]
    public Task PullsOnLoop() => Measured(nameof(PullsOnLoop), async () =>
    {
        var consumer = await CreateConsumerAsync();
        var inbox = "_INBOX." + Guid.NewGuid().ToString("N");
        var sub = new PullingSub(_nats, inbox, $"$JS.API.CONSUMER.MSG.NEXT.ROOMS.{consumer}", Messages, 1024);
        await _nats.AddSubAsync(sub);
        sub.Start();
        await sub.Done.Task;
        await sub.DisposeAsync();
        await _js.DeleteConsumerAsync("ROOMS", consumer);
    });

    [Benchmark(OperationsPerInvoke = Messages)]
    public Task PullsNoMessage() => Measured(nameof(PullsNoMessage), () => PullAsync(static (_, _, _, in _, in _) => null));

    [Benchmark(OperationsPerInvoke = Messages)]
    public Task PullsRoomMessage()
    {
        string? last = null;
        return Measured(nameof(PullsRoomMessage), () => PullAsync((subject, seq, ts, in headers, in payload) =>
        {
            var block = HeaderBlock.Read(headers, Encoding.ASCII, last);
            var message = _reader.Create(Room, seq, 0, ts, block, payload);
            last = message.Type;
            return message;
        }));
    }

    [Benchmark(OperationsPerInvoke = Messages)]
    public Task BareOrderedConsumer() => Measured(nameof(BareOrderedConsumer), async () =>
    {
        var consumer = await _js.CreateOrderedConsumerAsync("ROOMS", new NatsJSOrderedConsumerOpts { FilterSubjects = [$"rooms.{Room}"] });
        var received = 0;
        await foreach (var _ in consumer.ConsumeAsync<byte[]>())
        {
            if (++received == Messages)
            {
                break;
            }
        }
    });

    private async Task PullAsync(DeliveryReader read)
    {
        var consumer = await CreateConsumerAsync();
        var pulls = await ConsumerPulls.OpenAsync(_nats, "$JS.API", "ROOMS", consumer, 1024, read, TimeSpan.FromSeconds(5), TimeProvider.System, default);
        var received = 0;
        while (received < Messages)
        {
            await pulls.TopUpAsync(Messages - received, default);
            var next = await pulls.NextAsync(default);
            if (next.IsDelivery)
            {
                received++;
            }
        }

        await pulls.DisposeAsync();
        await _js.DeleteConsumerAsync("ROOMS", consumer);
    }

    private async Task<string> CreateConsumerAsync()
    {
        var name = Nuid.NewNuid();
        await _js.CreateOrUpdateConsumerAsync("ROOMS", new ConsumerConfig
        {
            Name = name,
            FilterSubject = $"rooms.{Room}",
            DeliverPolicy = ConsumerConfigDeliverPolicy.All,
            AckPolicy = ConsumerConfigAckPolicy.None,
            MemStorage = true,
            NumReplicas = 1,
            InactiveThreshold = TimeSpan.FromSeconds(30),
        });
        return name;
    }

    private static async Task Measured(string name, Func<Task> read)
    {
        var before = Process.GetCurrentProcess().TotalProcessorTime;
        await read();
        var cpu = Process.GetCurrentProcess().TotalProcessorTime - before;
        lock (Cpu)
        {
            Cpu[name] = Cpu.TryGetValue(name, out var sum) ? (sum.Cpu + cpu, sum.Messages + Messages) : (cpu, Messages);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private sealed class CountingSub(NatsConnection connection, string inbox, int expected)
        : NatsSubBase(connection, connection.SubscriptionManager, inbox + ".*", queueGroup: null, opts: null)
    {
        private int _count;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        protected override ValueTask ReceiveInternalAsync(string subject, string? replyTo, ReadOnlySequence<byte>? headersBuffer, ReadOnlySequence<byte> payloadBuffer)
        {
            if (replyTo is not null && ++_count == expected)
            {
                Done.TrySetResult();
            }

            return ValueTask.CompletedTask;
        }

        protected override void TryComplete()
        {
        }
    }

    private sealed class PullingSub(NatsConnection connection, string inbox, string next, int expected, int batch)
        : NatsSubBase(connection, connection.SubscriptionManager, inbox + ".*", queueGroup: null, opts: null)
    {
        private int _count;
        private int _asked;
        private int _pulls;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Start()
        {
            Pull();
            Pull();
        }

        private void Pull()
        {
            var size = Math.Min(batch, expected - _asked);
            if (size <= 0)
            {
                return;
            }

            _asked += size;
            // Sent from the read loop without waiting for it: it is written into the connection's buffer.
            var sent = connection.PublishAsync(next, Encoding.ASCII.GetBytes($"{{\"batch\":{size},\"no_wait\":true}}"), replyTo: $"{inbox}.{++_pulls}");
            if (!sent.IsCompletedSuccessfully)
            {
                _ = sent.AsTask();
            }
        }

        protected override ValueTask ReceiveInternalAsync(string subject, string? replyTo, ReadOnlySequence<byte>? headersBuffer, ReadOnlySequence<byte> payloadBuffer)
        {
            if (replyTo is null)
            {
                return ValueTask.CompletedTask;
            }

            if (++_count == expected)
            {
                Done.TrySetResult();
            }
            else if (_asked - _count <= batch + batch / 2)
            {
                Pull();
            }

            return ValueTask.CompletedTask;
        }

        protected override void TryComplete()
        {
        }
    }

    private sealed class MeterFactory : IMeterFactory
    {
        public Meter Create(MeterOptions options) => new(options);

        public void Dispose()
        {
        }
    }
}
