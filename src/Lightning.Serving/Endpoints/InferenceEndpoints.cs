using System.Buffers;
using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>Maps the Open Inference Protocol (v2) REST endpoints of the models added with <see cref="OnnxInferenceServiceCollectionExtensions.AddOnnxInference"/>.</summary>
public static class InferenceEndpoints
{
    private const string UnknownModelLabel = "(unknown)";

    /// <summary>
    /// Maps <c>GET /v2/health/live</c>, <c>GET /v2/health/ready</c>, <c>GET /v2/models/{name}</c>,
    /// <c>GET /v2/models/{name}/ready</c>, <c>POST /v2/models/{name}/infer</c> and, unless
    /// <see cref="OnnxInferenceOptions.MetricsPath"/> is null, the Prometheus metrics.
    /// </summary>
    /// <param name="endpoints">The application's endpoints.</param>
    /// <returns>The <c>/v2</c> route group, for conventions such as authorization.</returns>
    /// <exception cref="InvalidOperationException"><see cref="OnnxInferenceServiceCollectionExtensions.AddOnnxInference"/> was not called.</exception>
    public static RouteGroupBuilder MapOpenInference(this IEndpointRouteBuilder endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var services = endpoints.ServiceProvider;
        if (services.GetService<IServiceProviderIsService>()?.IsService(typeof(OnnxModelRegistry)) != true)
            throw new InvalidOperationException(
                "Unable to find the required services. Add them by calling 'IServiceCollection.AddOnnxInference()' in the application startup code.");
        // The options are validated when the host starts; here only the metrics route is read, without validating.
        var options = new OnnxInferenceOptions();
        foreach (var configure in services.GetServices<IConfigureOptions<OnnxInferenceOptions>>()) configure.Configure(options);
        var group = endpoints.MapGroup("/v2");
        group.MapGet("/health/live", Live);
        group.MapGet("/health/ready", Ready);
        group.MapGet("/models/{name}", Metadata);
        group.MapGet("/models/{name}/ready", ModelReady);
        group.MapPost("/models/{name}/infer", InferAsync);
        if (options.MetricsPath is { } metricsPath)
            endpoints.MapGet(metricsPath, MetricsAsync);
        return group;
    }

    internal static async Task MetricsAsync(HttpContext context, OnnxModelRegistry registry)
    {
        context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await registry.Metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
    }

    internal static JsonHttpResult<ServerHealth> Live(OnnxModelRegistry registry) =>
        TypedResults.Json(new ServerHealth(registry.IsLive, null), InferenceJson.SerializerOptions);

    internal static JsonHttpResult<ServerHealth> Ready(OnnxModelRegistry registry)
    {
        bool ready = registry.IsReady;
        // The spec's ready body is {"live": bool} (sic); "ready" is added for clarity. 4xx means not ready.
        return TypedResults.Json(new ServerHealth(ready, ready), InferenceJson.SerializerOptions,
            statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    internal static Results<JsonHttpResult<ModelMetadata>, JsonHttpResult<InferenceError>> Metadata(string name, OnnxModelRegistry registry)
    {
        if (!registry.TryGet(name, out var model) || model.Current is not { } loaded)
            return NotFound(name, registry);
        var parameters = new Dictionary<string, object>
        {
            ["execution_provider"] = loaded.ExecutionProvider,
            ["requested_execution_provider"] = model.Options.ExecutionProvider == OnnxExecutionProvider.Cuda ? LoadedModel.CudaProvider : LoadedModel.CpuProvider,
            ["max_batch_size"] = model.Options.MaxBatchSize,
            ["dynamic_batching"] = loaded.Batchable,
            ["max_queue_delay_microseconds"] = model.Options.MaxQueueDelayMicroseconds,
            ["max_queue_size"] = model.Options.MaxQueueSize,
            ["generation"] = loaded.Generation,
        };
        return TypedResults.Json(new ModelMetadata(name, [], "onnx_onnxv1",
            [.. loaded.Inputs.Select(s => new TensorMetadata(s.Name, s.Datatype, s.Shape))],
            [.. loaded.Outputs.Select(s => new TensorMetadata(s.Name, s.Datatype, s.Shape))],
            parameters), InferenceJson.SerializerOptions);
    }

    internal static Results<JsonHttpResult<ModelReadiness>, JsonHttpResult<InferenceError>> ModelReady(string name, OnnxModelRegistry registry)
    {
        if (!registry.TryGet(name, out var model)) return NotFound(name, registry);
        bool ready = model.IsReady && !registry.IsStopping;
        return TypedResults.Json(new ModelReadiness(name, ready), InferenceJson.SerializerOptions,
            statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    internal static async Task<Results<InferResult, JsonHttpResult<InferenceError>>> InferAsync(
        string name, HttpContext context, OnnxModelRegistry registry)
    {
        var started = Stopwatch.GetTimestamp();
        var metrics = registry.Metrics;
        var label = UnknownModelLabel;
        int status = StatusCodes.Status500InternalServerError;
        try
        {
            if (!registry.TryGet(name, out var model))
            {
                status = StatusCodes.Status404NotFound;
                return NotFound(name, registry);
            }
            label = model.Name;
            if (registry.IsStopping)
            {
                status = StatusCodes.Status503ServiceUnavailable;
                return Unavailable(context, registry, $"the server is shutting down; model '{name}' takes no new requests.");
            }
            var limit = registry.Options.MaxRequestBodySize;
            try
            {
                InferRequest request;
                Task<InferenceTensor[]> run;
                // Arriving until queued (or run), so a batch forming meanwhile waits for this request.
                using (model.Arrive())
                {
                    var (body, length) = await ReadBodyAsync(context, limit).ConfigureAwait(false);
                    if (body is null)
                    {
                        status = StatusCodes.Status413PayloadTooLarge;
                        return Error(status,
                            $"the request body exceeds the maximum allowed size of {limit} bytes ({nameof(OnnxInferenceOptions)}.{nameof(OnnxInferenceOptions.MaxRequestBodySize)}).");
                    }
                    // The parsed request copies what it keeps (names, typed data), so the buffer goes back at once.
                    try
                    {
                        request = InferRequestParser.Parse(body.AsMemory(0, length));
                    }
                    finally
                    {
                        ArrayPool<byte>.Shared.Return(body);
                    }
                    run = model.InferAsync(request.Inputs, request.Outputs);
                }
                var outputs = await run.ConfigureAwait(false);
                status = StatusCodes.Status200OK;
                return new InferResult(name, request.Id, outputs);
            }
            catch (InferenceRequestException ex)
            {
                status = StatusCodes.Status400BadRequest;
                return Error(status, ex.Message);
            }
            catch (InferenceUnavailableException ex)
            {
                status = StatusCodes.Status503ServiceUnavailable;
                return Unavailable(context, registry, ex.Message);
            }
            catch (InferenceRunException ex)
            {
                status = StatusCodes.Status500InternalServerError;
                return Error(status, ex.Message);
            }
        }
        finally
        {
            metrics.Requests.WithLabels(label, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
            if (label != UnknownModelLabel)
                metrics.Latency.WithLabels(label).Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
        }
    }

    /// <summary>
    /// Reads the body, up to <paramref name="limit"/> bytes, into a buffer rented from <see cref="ArrayPool{T}.Shared"/>
    /// that the caller returns; a null buffer when the body is larger. A declared Content-Length sizes the buffer, so the
    /// body is copied once, straight from the connection; without one the buffer doubles as needed.
    /// </summary>
    private static async Task<(byte[]? Buffer, int Length)> ReadBodyAsync(HttpContext context, long limit)
    {
        var declared = context.Request.ContentLength;
        if (declared > limit) return (null, 0);
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
            sizeFeature.MaxRequestBodySize = limit;
        // One byte past a declared length, so the read that finds the end needs no larger buffer.
        var buffer = ArrayPool<byte>.Shared.Rent(declared < Array.MaxLength ? (int)declared.Value + 1 : 16 * 1024);
        int length = 0;
        bool complete = false;
        try
        {
            while (length <= limit)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length == Array.MaxLength) break;
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(2L * buffer.Length, Array.MaxLength));
                    buffer.AsSpan(0, length).CopyTo(larger);
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = larger;
                }
                int read = await context.Request.Body.ReadAsync(buffer.AsMemory(length), context.RequestAborted).ConfigureAwait(false);
                if (read == 0)
                {
                    complete = true;
                    break;
                }
                length += read;
            }
        }
        catch (BadHttpRequestException ex) when (ex.StatusCode == StatusCodes.Status413PayloadTooLarge)
        {
            // Kestrel's own limit (set above) ended the read: the body is too large.
        }
        finally
        {
            if (!complete) ArrayPool<byte>.Shared.Return(buffer);
        }
        return complete ? (buffer, length) : (null, 0);
    }

    private static JsonHttpResult<InferenceError> NotFound(string name, OnnxModelRegistry registry) =>
        Error(StatusCodes.Status404NotFound,
            $"model '{name}' is not found; the served models are [{string.Join(", ", registry.Names.Select(n => $"'{n}'"))}].");

    private static JsonHttpResult<InferenceError> Unavailable(HttpContext context, OnnxModelRegistry registry, string message)
    {
        context.Response.Headers.RetryAfter = registry.Options.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Error(StatusCodes.Status503ServiceUnavailable, message);
    }

    private static JsonHttpResult<InferenceError> Error(int status, string message) =>
        TypedResults.Json(new InferenceError(message), InferenceJson.SerializerOptions, statusCode: status);
}
