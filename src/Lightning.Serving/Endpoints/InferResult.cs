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

    private bool IsBinary => binary is not null && Array.IndexOf(binary, true) >= 0;

    public int? StatusCode => StatusCodes.Status200OK;

    public string ContentType => IsBinary ? "application/octet-stream" : "application/json; charset=utf-8";

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = ContentType;
        if (!IsBinary)
        {
            // The writer fills the pipe's own buffers; disposing it commits them, and the flush sends them.
            using (var writer = new Utf8JsonWriter(response.BodyWriter, InferenceJson.WriterOptions))
                InferResponseWriter.Write(writer, modelName, modelVersion, id, outputs, null);
            await response.BodyWriter.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
            return;
        }
        // The header's length goes before the body, so the JSON is written to a buffer first.
        var json = new ArrayBufferWriter<byte>(1024);
        using (var writer = new Utf8JsonWriter(json, InferenceJson.WriterOptions))
            InferResponseWriter.Write(writer, modelName, modelVersion, id, outputs, binary);
        response.Headers[HeaderLengthName] = json.WrittenCount.ToString(System.Globalization.CultureInfo.InvariantCulture);
        long total = json.WrittenCount;
        for (int o = 0; o < outputs.Count; o++)
            if (binary![o]) total += BinaryTensorData.Length(outputs[o]);
        response.ContentLength = total;
        response.BodyWriter.Write(json.WrittenSpan);
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
