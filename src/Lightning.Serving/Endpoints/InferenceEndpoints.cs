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
    /// Maps <c>GET /v2</c> (server metadata), <c>GET /v2/health/live</c>, <c>GET /v2/health/ready</c>,
    /// <c>GET /v2/models/{name}[/versions/{version}]</c>, <c>GET /v2/models/{name}[/versions/{version}]/ready</c>,
    /// <c>POST /v2/models/{name}[/versions/{version}]/infer</c> (JSON, or the binary tensor data extension) and, unless
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
        group.MapGet("", ServerMetadata);
        group.MapGet("/health/live", Live);
        group.MapGet("/health/ready", Ready);
        group.MapGet("/models/{name}", (string name, OnnxModelRegistry registry) => Metadata(name, null, registry));
        group.MapGet("/models/{name}/versions/{version}", Metadata);
        group.MapGet("/models/{name}/ready", (string name, OnnxModelRegistry registry) => ModelReady(name, null, registry));
        group.MapGet("/models/{name}/versions/{version}/ready", ModelReady);
        group.MapPost("/models/{name}/infer", (string name, HttpContext context, OnnxModelRegistry registry) => InferAsync(name, null, context, registry));
        group.MapPost("/models/{name}/versions/{version}/infer", InferAsync);
        if (options.RepositoryPath is not null)
        {
            group.MapPost("/repository/index", RepositoryIndex);
            group.MapPost("/repository/models/{name}/load", RepositoryLoadAsync);
            group.MapPost("/repository/models/{name}/unload", RepositoryUnloadAsync);
        }
        if (options.MetricsPath is { } metricsPath)
            endpoints.MapGet(metricsPath, MetricsAsync);
        return group;
    }

    internal static async Task MetricsAsync(HttpContext context, OnnxModelRegistry registry)
    {
        context.Response.ContentType = "text/plain; version=0.0.4; charset=utf-8";
        await registry.Metrics.Registry.CollectAndExportAsTextAsync(context.Response.Body, context.RequestAborted).ConfigureAwait(false);
    }

    /// <summary>The protocol extensions this server implements, as <c>GET /v2</c> lists them.</summary>
    internal static readonly string[] Extensions = ["binary_tensor_data", "parameters"];

    internal static JsonHttpResult<ServerMetadata> ServerMetadata(OnnxModelRegistry registry) =>
        TypedResults.Json(new ServerMetadata("lightning-serving",
            typeof(InferenceEndpoints).Assembly.GetName().Version?.ToString(3) ?? "0.0.0", ExtensionsOf(registry)), InferenceJson.SerializerOptions);

    /// <summary>The extensions of this server: the repository's only when one is configured.</summary>
    internal static string[] ExtensionsOf(OnnxModelRegistry registry) =>
        registry.Repository is null ? Extensions : [.. Extensions, "model_repository"];

    internal static JsonHttpResult<IReadOnlyList<RepositoryIndexEntry>> RepositoryIndex(OnnxModelRegistry registry) =>
        TypedResults.Json(registry.Repository!.Index(), InferenceJson.SerializerOptions);

    internal static async Task<JsonHttpResult<object>> RepositoryLoadAsync(string name, OnnxModelRegistry registry) =>
        await RepositoryChangeAsync(() => registry.Repository!.LoadAsync(name)).ConfigureAwait(false);

    internal static async Task<JsonHttpResult<object>> RepositoryUnloadAsync(string name, OnnxModelRegistry registry) =>
        await RepositoryChangeAsync(() => registry.Repository!.UnloadAsync(name)).ConfigureAwait(false);

    private static async Task<JsonHttpResult<object>> RepositoryChangeAsync(Func<Task> change)
    {
        try
        {
            await change().ConfigureAwait(false);
            return TypedResults.Json<object>(new Dictionary<string, object>(), InferenceJson.SerializerOptions);
        }
        catch (RepositoryException ex)
        {
            return TypedResults.Json<object>(new InferenceError(ex.Message), InferenceJson.SerializerOptions, statusCode: ex.Status);
        }
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

    internal static Results<JsonHttpResult<ModelMetadata>, JsonHttpResult<InferenceError>> Metadata(string name, string? version, OnnxModelRegistry registry)
    {
        if (!registry.TryFind(name, version, out var model, out var missing)) return Error(StatusCodes.Status404NotFound, missing);
        if (model.Current is not { } loaded)
            return Error(StatusCodes.Status400BadRequest, $"model '{name}' is not loaded yet.");
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
        return TypedResults.Json(new ModelMetadata(name, [.. registry.Versions(name).Select(v => v.Version)], "onnx_onnxv1",
            [.. loaded.Inputs.Select(s => new TensorMetadata(s.Name, s.Datatype, s.Shape))],
            [.. loaded.Outputs.Select(s => new TensorMetadata(s.Name, s.Datatype, s.Shape))],
            parameters), InferenceJson.SerializerOptions);
    }

    internal static Results<JsonHttpResult<ModelReadiness>, JsonHttpResult<InferenceError>> ModelReady(string name, string? version, OnnxModelRegistry registry)
    {
        if (!registry.TryFind(name, version, out var model, out var missing)) return Error(StatusCodes.Status404NotFound, missing);
        bool ready = model.IsReady && !registry.IsStopping;
        return TypedResults.Json(new ModelReadiness(name, ready), InferenceJson.SerializerOptions,
            statusCode: ready ? StatusCodes.Status200OK : StatusCodes.Status400BadRequest);
    }

    internal static async Task<Results<InferResult, JsonHttpResult<InferenceError>>> InferAsync(
        string name, string? version, HttpContext context, OnnxModelRegistry registry)
    {
        var started = Stopwatch.GetTimestamp();
        var metrics = registry.Metrics;
        var label = UnknownModelLabel;
        ServedModel? served = null;
        int status = StatusCodes.Status500InternalServerError;
        try
        {
            if (!registry.TryFind(name, version, out var model, out var missing))
            {
                status = StatusCodes.Status404NotFound;
                return Error(status, missing);
            }
            label = model.Name;
            served = model;
            if (registry.IsStopping)
            {
                status = StatusCodes.Status503ServiceUnavailable;
                return Unavailable(context, registry, $"the server is shutting down; model '{name}' takes no new requests.");
            }
            var limit = registry.Options.MaxRequestBodySize;
            CancellationTokenSource? timeout = null;
            try
            {
                InferRequest request;
                Task<InferenceTensor[]> run;
                var aborted = context.RequestAborted;
                // At most so many bodies are read and parsed at once, so the memory they hold is bounded whatever the load.
                await registry.ParseSlots.WaitAsync(aborted).ConfigureAwait(false);
                try
                {
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
                            int jsonLength = JsonHeaderLength(context.Request, length);
                            request = InferRequestParser.Parse(body.AsMemory(0, jsonLength), body.AsMemory(jsonLength, length - jsonLength));
                        }
                        finally
                        {
                            ArrayPool<byte>.Shared.Return(body);
                        }
                        var token = aborted;
                        // 0 is no timeout, as Triton's.
                        if (request.Parameters.TimeoutMicroseconds is { } micros and > 0)
                        {
                            timeout = CancellationTokenSource.CreateLinkedTokenSource(aborted);
                            timeout.CancelAfter(TimeSpan.FromMicroseconds(Math.Min(micros, (long)int.MaxValue * 1000)));
                            token = timeout.Token;
                        }
                        run = model.InferAsync(request.Inputs, request.OutputNames, token);
                        // Ran inline (or its batch is over): nothing reads the input data any more, so the FP32 buffer is reused.
                        if (run.IsCompletedSuccessfully)
                            foreach (var input in request.Inputs)
                                if (input.Data is float[] floats) SpareFloats.Give(floats);
                    }
                }
                finally
                {
                    registry.ParseSlots.Release();
                }
                var outputs = await run.ConfigureAwait(false);
                status = StatusCodes.Status200OK;
                return new InferResult(name, model.Version, request.Id, outputs, BinaryFlags(request, outputs));
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
            catch (OperationCanceledException) when (timeout is { IsCancellationRequested: true } && !context.RequestAborted.IsCancellationRequested)
            {
                // Expired before it was queued (a timeout of 0), while it waited (dropped unrun, as Triton's queue policy REJECT) or
                // while it ran (ONNX Runtime stopped the run at its next node).
                status = StatusCodes.Status503ServiceUnavailable;
                return Unavailable(context, registry,
                    $"request timeout expired: the request for model '{name}' took longer than its \"timeout\" parameter; it was dropped from the queue or its run was stopped.");
            }
            catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
            {
                // The client went away: nobody reads the answer; 499 (nginx's "client closed request") labels the metric.
                status = 499;
                return Error(status, $"the client closed the request for model '{name}' before the answer.");
            }
            finally
            {
                timeout?.Dispose();
            }
        }
        finally
        {
            if (served is null)
                metrics.Requests.WithLabels(label, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
            else
            {
                served.Requests(status).Inc();
                served.Latency.Observe(Stopwatch.GetElapsedTime(started).TotalSeconds);
            }
        }
    }

    /// <summary>Which outputs go as binary data: each output's <c>binary_data</c>, else the request's <c>binary_data_output</c>; null when none.</summary>
    private static bool[]? BinaryFlags(InferRequest request, InferenceTensor[] outputs)
    {
        bool[]? flags = null;
        for (int o = 0; o < outputs.Length; o++)
        {
            bool binary = request.Parameters.BinaryDataOutput;
            if (request.Outputs is { } requested)
                foreach (var r in requested)
                    if (r.Name == outputs[o].Name && r.BinaryData is { } b) binary = b;
            if (!binary) continue;
            flags ??= new bool[outputs.Length];
            flags[o] = true;
        }
        return flags;
    }

    /// <summary>
    /// The length of the JSON at the start of the body: the whole body, or under the binary tensor data extension the
    /// <c>Inference-Header-Content-Length</c> header, the binary tensor data following it.
    /// </summary>
    private static int JsonHeaderLength(HttpRequest request, int bodyLength)
    {
        if (!request.Headers.TryGetValue(InferResult.HeaderLengthName, out var values)) return bodyLength;
        if (values.Count != 1 || !int.TryParse(values[0], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
            || n > bodyLength)
            throw new InferenceRequestException(
                $"header {InferResult.HeaderLengthName} = '{values}' is not allowed; it is the byte length of the JSON at the start of the body, 0 to {bodyLength} here.");
        return n;
    }

    /// <summary>The first chunk read for a body; it grows as the data arrives, never ahead of it.</summary>
    private const int FirstChunk = 16 * 1024;

    /// <summary>
    /// Reads the body, up to <paramref name="limit"/> bytes, into a buffer rented from <see cref="ArrayPool{T}.Shared"/>
    /// that the caller returns; a null buffer when the body is larger. The buffer starts at a small chunk and doubles as
    /// bytes arrive, so a declared Content-Length (which a client may fake) never allocates ahead of the data.
    /// </summary>
    private static async Task<(byte[]? Buffer, int Length)> ReadBodyAsync(HttpContext context, long limit)
    {
        var declared = context.Request.ContentLength;
        if (declared > limit) return (null, 0);
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } sizeFeature)
            sizeFeature.MaxRequestBodySize = limit;
        // One byte past a declared length, so the read that finds the end needs no larger buffer.
        var buffer = ArrayPool<byte>.Shared.Rent(declared is { } d ? (int)Math.Min(d + 1, FirstChunk) : FirstChunk);
        int length = 0;
        bool complete = false;
        try
        {
            while (length <= limit)
            {
                if (length == buffer.Length)
                {
                    if (buffer.Length == Array.MaxLength) break;
                    long grown = 2L * buffer.Length;
                    if (declared is { } expected && expected + 1 > length) grown = Math.Min(grown, Math.Max(expected + 1, length + 1));
                    var larger = ArrayPool<byte>.Shared.Rent((int)Math.Min(Math.Min(grown, limit + 1), Array.MaxLength));
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

    private static JsonHttpResult<InferenceError> Unavailable(HttpContext context, OnnxModelRegistry registry, string message)
    {
        context.Response.Headers.RetryAfter = registry.Options.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
        return Error(StatusCodes.Status503ServiceUnavailable, message);
    }

    private static JsonHttpResult<InferenceError> Error(int status, string message) =>
        TypedResults.Json(new InferenceError(message), InferenceJson.SerializerOptions, statusCode: status);
}
