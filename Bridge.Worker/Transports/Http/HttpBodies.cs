namespace Bridge.Worker.Transports.Http;

/// <summary>Reads a request body up to a size limit, for the endpoints that take JSON bodies.</summary>
internal static class HttpBodies
{
    /// <summary>The body, or null when it is (or says it is) larger than <paramref name="maxBytes"/>: answer 413 then.</summary>
    public static async Task<ReadOnlyMemory<byte>?> ReadAsync(HttpRequest request, int maxBytes, CancellationToken cancellationToken)
    {
        if (request.ContentLength > maxBytes)
        {
            return null;
        }

        var body = new MemoryStream();
        var buffer = new byte[8192];
        int read;
        while ((read = await request.Body.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (body.Length + read > maxBytes)
            {
                return null;
            }

            body.Write(buffer, 0, read);
        }

        return body.GetBuffer().AsMemory(0, (int)body.Length);
    }
}
