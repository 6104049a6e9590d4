using Bridge.LoadTests.Harness;

namespace Bridge.LoadTests.Infrastructure;

/// <summary>The load harness's SSE subscriber: the toolkit's <see cref="SseClient"/> in raw mode, feeding a <see cref="DeliveryTracker"/>.</summary>
internal static class LoadSse
{
    extension(SseClient)
    {
        /// <summary>
        /// Subscribes to <c>GET /sse?rooms=..</c> and hands the data of every <c>load.*</c> event (the JSON envelope)
        /// to <paramref name="tracker"/>; <see cref="SseClient.Joined"/> counts the rooms joined. Throws
        /// <see cref="HttpRequestException"/> when the worker refuses the stream.
        /// </summary>
        public static async Task<SseClient> ConnectAsync(Uri workerUrl, IEnumerable<string> rooms, DeliveryTracker tracker, string? token, CancellationToken cancellationToken)
        {
            var client = await SseClient.ConnectAsync(workerUrl, new SseClientOptions
            {
                Rooms = Uri.EscapeDataString(string.Join(',', rooms)),
                Token = token,
                OnEvent = (type, data) =>
                {
                    if (type.StartsWith("load."u8))
                    {
                        try
                        {
                            tracker.OnJsonBody(data);
                        }
                        catch (Exception ex)
                        {
                            // Counted, then the client drops its stream (SseClient.EventHandlerError): a harness bug
                            // must show in the report, not as a subscriber that silently stopped reading.
                            tracker.Failed(ex);
                            throw;
                        }
                    }
                },
            }, cancellationToken);
            if (!client.Response.IsSuccessStatusCode)
            {
                var status = client.Response.StatusCode;
                await client.DisposeAsync();
                throw new HttpRequestException($"SSE: status code '{(int)status}'", null, status);
            }

            return client;
        }
    }
}
