using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.DependencyInjection;

namespace Lightning.Serving;

/// <summary>The request handler behind one <c>MapPredict</c> endpoint.</summary>
internal sealed class PredictHandler<TData, TPrediction>(string modelName, JsonSerializerOptions json)
    where TData : class
    where TPrediction : class, new()
{
    private readonly VectorSizeCheck<TData> _vectors = VectorSizeCheck<TData>.Create();
    private PredictionEnginePool<TData, TPrediction>? _pool;

    public async Task<IResult> HandleAsync(HttpContext context)
    {
        var pool = _pool ??= context.RequestServices.GetRequiredService<PredictionEnginePool<TData, TPrediction>>();
        byte[] body;
        try
        {
            body = await ReadBodyAsync(context.Request, context.RequestAborted);
        }
        catch (BadHttpRequestException e)
        {
            // e.g. the body is over Kestrel's MaxRequestBodySize: 413, not a 500.
            return Problem(e.StatusCode, "Unreadable request body", e.Message);
        }

        // The serializer reads no byte order mark.
        var payload = body.AsMemory(body.AsSpan().StartsWith("\uFEFF"u8) ? 3 : 0);
        var start = FirstToken(payload.Span);
        try
        {
            if (start == (byte)'{')
            {
                var example = JsonSerializer.Deserialize<TData>(payload.Span, json);
                if (example is null) return Problem(400, "Invalid example", "The example is null.");
                if (_vectors.Check(example, null) is { } wrong) return Problem(400, "Invalid example", wrong);
                return TypedResults.Json(pool.Predict(modelName, example), json);
            }
            if (start == (byte)'[')
            {
                var examples = JsonSerializer.Deserialize<TData?[]>(payload.Span, json)!;
                var nullAt = Array.IndexOf(examples, null);
                if (nullAt >= 0) return Problem(400, "Invalid example", $"Example [{nullAt}] is null; every element of the array must be a JSON object.");
                for (var i = 0; i < examples.Length; i++)
                    if (_vectors.Check(examples[i]!, i) is { } wrong) return Problem(400, "Invalid example", wrong);
                return TypedResults.Json(PredictAll(pool, examples!), json);
            }
        }
        catch (JsonException e)
        {
            return Problem(400, "Invalid JSON", $"The request body does not hold {Expected}: {e.Message}");
        }

        if (start is null) return Problem(400, "Empty request body", $"The request body is empty; send {Expected}.");
        // Say what it is when it is valid JSON, or where it breaks when it is not.
        try
        {
            using var document = JsonDocument.Parse(payload);
            return Problem(400, "Invalid example", $"The request body is a JSON {document.RootElement.ValueKind}; send {Expected}.");
        }
        catch (JsonException e)
        {
            return Problem(400, "Invalid JSON", $"The request body is not valid JSON: {e.Message}");
        }
    }

    private static string Expected => $"one {typeof(TData).Name} as a JSON object or an array of them";

    private TPrediction[] PredictAll(PredictionEnginePool<TData, TPrediction> pool, TData[] examples)
    {
        var results = new TPrediction[examples.Length];
        if (examples.Length == 0) return results;
        var engine = pool.GetPredictionEngine(modelName);
        try
        {
            for (var i = 0; i < examples.Length; i++) results[i] = engine.Predict(examples[i]);
        }
        finally
        {
            pool.ReturnPredictionEngine(modelName, engine);
        }
        return results;
    }

    private static ProblemHttpResult Problem(int status, string title, string detail) =>
        TypedResults.Problem(detail: detail, statusCode: status, title: title);

    private static async Task<byte[]> ReadBodyAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        // A declared length sizes the first buffer only up to a small chunk: the client may declare far more than it
        // sends (or than the server allows), and the stream grows as the bytes actually arrive.
        var buffer = new MemoryStream(request.ContentLength is long n and > 0 ? (int)Math.Min(n, 16 * 1024) : 256);
        await request.Body.CopyToAsync(buffer, cancellationToken);
        return buffer.ToArray();
    }

    /// <summary>The first byte that is not whitespace; null for an empty body.</summary>
    private static byte? FirstToken(ReadOnlySpan<byte> body)
    {
        foreach (var b in body)
        {
            if (b is (byte)' ' or (byte)'\t' or (byte)'\r' or (byte)'\n') continue;
            return b;
        }
        return null;
    }
}
