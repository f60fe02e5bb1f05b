using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using HttpJsonOptions = Microsoft.AspNetCore.Http.Json.JsonOptions;

namespace Lightning.Serving;

/// <summary><c>MapPredict</c>: a JSON prediction endpoint over a <see cref="PredictionEnginePool{TData, TPrediction}"/>.</summary>
public static class PredictEndpointRouteBuilderExtensions
{
    /// <summary>Maps <c>POST pattern</c> to the default model; see <see cref="MapPredict{TData, TPrediction}(IEndpointRouteBuilder, string, string)"/>.</summary>
    /// <param name="endpoints">The route builder (e.g. the <c>WebApplication</c>).</param>
    /// <param name="pattern">The route pattern, e.g. <c>"/predict"</c>.</param>
    /// <returns>The endpoint's builder, for auth, rate limiting, OpenAPI and other conventions.</returns>
    public static RouteHandlerBuilder MapPredict<TData, TPrediction>(this IEndpointRouteBuilder endpoints, string pattern)
        where TData : class
        where TPrediction : class, new()
        => endpoints.MapPredict<TData, TPrediction>(pattern, string.Empty);

    /// <summary>
    /// Maps <c>POST pattern</c> to a model of the pool: the body is one JSON example (answered with one prediction)
    /// or an array of examples (scored through one engine rental, answered with an array in the same order).
    /// Malformed JSON, a body that is neither an object nor an array, an example that does not fit
    /// <typeparamref name="TData"/>, or a vector whose length differs from its column's <c>[VectorType(n)]</c> is
    /// answered 400 with a ProblemDetails body that names the problem (the column, the expected and the received length).
    /// </summary>
    /// <param name="endpoints">The route builder (e.g. the <c>WebApplication</c>).</param>
    /// <param name="pattern">The route pattern, e.g. <c>"/predict/sentiment"</c>.</param>
    /// <param name="modelName">The pool's model name; <c>""</c> for the default model.</param>
    /// <returns>The endpoint's builder, for auth, rate limiting, OpenAPI and other conventions.</returns>
    /// <exception cref="InvalidOperationException"><c>AddPredictionEnginePool</c> was not called for these types, or no model of that name is configured.</exception>
    public static RouteHandlerBuilder MapPredict<TData, TPrediction>(this IEndpointRouteBuilder endpoints, string pattern, string modelName)
        where TData : class
        where TPrediction : class, new()
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        ArgumentNullException.ThrowIfNull(pattern);
        ArgumentNullException.ThrowIfNull(modelName);
        var services = endpoints.ServiceProvider;
        var poolType = $"PredictionEnginePool<{typeof(TData).Name}, {typeof(TPrediction).Name}>";
        var isService = services.GetService<IServiceProviderIsService>();
        if (isService is not null && !isService.IsService(typeof(PredictionEnginePool<TData, TPrediction>)))
            throw new InvalidOperationException(
                $"Unable to find the required services for MapPredict: no {poolType} is registered. " +
                $"Call 'services.AddPredictionEnginePool<{typeof(TData).Name}, {typeof(TPrediction).Name}>().FromFile(...)' in the application startup code.");
        EnsureModelConfigured<TData, TPrediction>(services, modelName, poolType);

        var json = new JsonSerializerOptions(services.GetService<IOptions<HttpJsonOptions>>()?.Value.SerializerOptions ?? new JsonSerializerOptions(JsonSerializerDefaults.Web))
        {
            // ML.NET input/output classes are usually written with public fields.
            IncludeFields = true,
        };
        // A regression score or probability can be NaN; plain JSON numbers cannot say so.
        json.NumberHandling |= JsonNumberHandling.AllowNamedFloatingPointLiterals;
        var handler = new PredictHandler<TData, TPrediction>(modelName, json);
        return endpoints.MapPost(pattern, (Func<HttpContext, Task<IResult>>)handler.HandleAsync)
            .Accepts<TData>("application/json")
            .Produces<TPrediction>(StatusCodes.Status200OK, "application/json")
            .ProducesProblem(StatusCodes.Status400BadRequest);
    }

    private static void EnsureModelConfigured<TData, TPrediction>(IServiceProvider services, string modelName, string poolType)
        where TData : class
        where TPrediction : class, new()
    {
        var names = services.GetService<IOptions<PredictionEnginePoolModelNames<TData, TPrediction>>>()?.Value.Names;
        if (names is not null && names.Contains(modelName)) return;
        // Not added with FromFile/FromUri: a custom ModelLoader configured through named options is fine too.
        var factory = services.GetService<IOptionsFactory<PredictionEnginePoolOptions<TData, TPrediction>>>();
        if (factory?.Create(modelName).ModelLoader is not null) return;
        var what = modelName.Length == 0 ? "no default model" : $"no model named '{modelName}'";
        throw new InvalidOperationException(
            $"MapPredict: {poolType} has {what}. Add it with AddPredictionEnginePool<{typeof(TData).Name}, {typeof(TPrediction).Name}>()" +
            (modelName.Length == 0 ? ".FromFile(path)" : $".FromFile(\"{modelName}\", path)") + " or FromUri.");
    }
}
