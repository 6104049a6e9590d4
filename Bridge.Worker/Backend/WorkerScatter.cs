using Bridge.Worker.Nats;
using Microsoft.Extensions.Options;
using NATS.Client.Core;

namespace Bridge.Worker.Backend;

/// <summary>The answers of every worker to one cluster-wide request, and the running workers that did not answer in time.</summary>
internal sealed record Gathered<T>(IReadOnlyList<T> Answers, IReadOnlyList<string> Workers, IReadOnlyList<string> Missing);

/// <summary>
/// Asks every worker at once: a NATS request on <c>{NatsPrefix}.worker.{op}</c>, which every worker subscribes to
/// without a queue group (this one included), gathering the answers until every worker listed in
/// <see cref="WorkerDirectory"/> has answered or <see cref="ApiOptions.ScatterTimeout"/> has passed.
/// </summary>
internal sealed class WorkerScatter(NatsContext nats, WorkerDirectory directory, IOptions<ApiOptions> options)
{
    /// <summary>
    /// Sends <paramref name="request"/> to every worker; <paramref name="workerOf"/> names the worker of an answer.
    /// Answers that do not parse are left out. Throws when NATS cannot take the request.
    /// </summary>
    public async Task<Gathered<TAnswer>> AskAllAsync<TRequest, TAnswer>(
        string op, TRequest request, Func<TAnswer, string> workerOf, CancellationToken cancellationToken)
        where TAnswer : class
    {
        var expected = directory.Running();
        var answers = new List<TAnswer>();
        var answered = new HashSet<string>(StringComparer.Ordinal);
        var replies = nats.Connection.RequestManyAsync<byte[], byte[]>(
            options.Value.NatsWorkerSubject(op),
            ApiJson.Serialize(request),
            replyOpts: new NatsSubOpts { Timeout = options.Value.ScatterTimeout, ThrowIfNoResponders = false },
            cancellationToken: cancellationToken);
        await foreach (var reply in replies)
        {
            if (reply.Data is not { Length: > 0 } data || Parse<TAnswer>(data) is not { } answer || !answered.Add(workerOf(answer)))
            {
                continue;
            }

            answers.Add(answer);
            if (expected.All(answered.Contains))
            {
                break;
            }
        }

        return new Gathered<TAnswer>(
            answers,
            [.. answered.Order(StringComparer.Ordinal)],
            [.. expected.Where(w => !answered.Contains(w))]);
    }

    private static T? Parse<T>(byte[] data)
        where T : class
    {
        try
        {
            return ApiJson.Deserialize<T>(data);
        }
        catch (System.Text.Json.JsonException)
        {
            return null;
        }
    }
}
