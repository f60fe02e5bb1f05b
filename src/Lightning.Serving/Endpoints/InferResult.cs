using System.Buffers;
using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Lightning.Serving;

/// <summary>
/// The 200 answer of a v2 infer request, written by <see cref="InferResponseWriter"/> straight to the response body: JSON,
/// or under the binary tensor data extension (any output asked for as binary) the JSON header, its length in
/// <c>Inference-Header-Content-Length</c>, and then the binary outputs' bytes in order.
/// </summary>
internal sealed class InferResult(string modelName, string? modelVersion, string? id, IReadOnlyList<InferenceTensor> outputs, bool[]? binary)
    : IResult, IStatusCodeHttpResult, IContentTypeHttpResult
{
    public const string HeaderLengthName = "Inference-Header-Content-Length";

    public InferResult(string modelName, string? id, IReadOnlyList<InferenceTensor> outputs)
        : this(modelName, null, id, outputs, null)
    {
    }

    [ThreadStatic]
    private static ArrayBufferWriter<byte>? t_json;

    /// <summary>A buffer grown past 1 MiB by one large answer is dropped, so no thread keeps that much for good.</summary>
    private static void ReleaseLargeBuffer(ArrayBufferWriter<byte> json)
    {
        if (json.Capacity > 1 << 20) t_json = null;
    }

    private bool IsBinary => binary is not null && Array.IndexOf(binary, true) >= 0;

    public int? StatusCode => StatusCodes.Status200OK;

    public string ContentType => IsBinary ? "application/octet-stream" : "application/json; charset=utf-8";

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = ContentType;
        // The JSON goes to this thread's buffer first, so the answer carries a Content-Length: a chunked answer ends with
        // a separate terminating chunk, which the client waits for. The buffer is copied into the pipe before any await.
        var json = t_json ??= new ArrayBufferWriter<byte>(4096);
        json.ResetWrittenCount();
        using (var writer = new Utf8JsonWriter(json, InferenceJson.WriterOptions))
            InferResponseWriter.Write(writer, modelName, modelVersion, id, outputs, IsBinary ? binary : null);
        if (!IsBinary)
        {
            response.ContentLength = json.WrittenCount;
            response.BodyWriter.Write(json.WrittenSpan);
            ReleaseLargeBuffer(json);
            await response.BodyWriter.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
            return;
        }
        response.Headers[HeaderLengthName] = json.WrittenCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        long total = json.WrittenCount;
        for (int o = 0; o < outputs.Count; o++)
            if (binary![o]) total += BinaryTensorData.Length(outputs[o]);
        response.ContentLength = total;
        response.BodyWriter.Write(json.WrittenSpan);
        ReleaseLargeBuffer(json);
        for (int o = 0; o < outputs.Count; o++)
        {
            if (!binary![o]) continue;
            var length = (int)BinaryTensorData.Length(outputs[o]);
            BinaryTensorData.Encode(outputs[o], response.BodyWriter.GetSpan(length)[..length]);
            response.BodyWriter.Advance(length);
        }
        await response.BodyWriter.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
    }
}
