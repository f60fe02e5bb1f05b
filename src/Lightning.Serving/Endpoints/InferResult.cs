using System.Text.Json;
using Microsoft.AspNetCore.Http;

namespace Lightning.Serving;

/// <summary>The 200 answer of a v2 infer request, written by <see cref="InferResponseWriter.Write"/> straight to the response body.</summary>
internal sealed class InferResult(string modelName, string? id, IReadOnlyList<InferenceTensor> outputs) : IResult, IStatusCodeHttpResult, IContentTypeHttpResult
{
    public int? StatusCode => StatusCodes.Status200OK;

    public string ContentType => "application/json; charset=utf-8";

    public async Task ExecuteAsync(HttpContext httpContext)
    {
        var response = httpContext.Response;
        response.StatusCode = StatusCodes.Status200OK;
        response.ContentType = ContentType;
        // The writer fills the pipe's own buffers; disposing it commits them, and the flush sends them.
        using (var writer = new Utf8JsonWriter(response.BodyWriter, InferenceJson.WriterOptions))
            InferResponseWriter.Write(writer, modelName, id, outputs);
        await response.BodyWriter.FlushAsync(httpContext.RequestAborted).ConfigureAwait(false);
    }
}
