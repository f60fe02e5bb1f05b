using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace Lightning.Serving;

/// <summary>Registers ONNX models served through the Open Inference Protocol (v2) with dynamic batching.</summary>
/// <example><code>
/// builder.Services.AddOnnxInference()
///     .AddModel("encoder", "encoder.onnx", o => { o.MaxBatchSize = 64; o.MaxQueueDelayMicroseconds = 500; });
/// var app = builder.Build();
/// app.MapOpenInference();
/// </code></example>
public static class OnnxInferenceServiceCollectionExtensions
{
    /// <summary>Adds the ONNX inference services (idempotent) and returns a builder to add models with.</summary>
    /// <param name="services">The application's services.</param>
    /// <param name="configure">Server-wide settings; null keeps the defaults.</param>
    public static OnnxInferenceBuilder AddOnnxInference(this IServiceCollection services, Action<OnnxInferenceOptions>? configure = null)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.AddLogging();
        var options = services.AddOptions<OnnxInferenceOptions>().ValidateOnStart();
        if (configure is not null) options.Configure(configure);
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnnxInferenceOptions>, OnnxInferenceOptionsValidator>());
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<OnnxModelOptions>, OnnxModelOptionsValidator>());
        services.TryAddSingleton<InferenceMetrics>();
        services.TryAddSingleton<OnnxModelRegistry>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IHostedService, OnnxModelRegistryHostedService>());
        // The gRPC service (MapOpenInferenceGrpc) takes messages up to the REST body limit.
        services.AddGrpc();
        services.AddOptions<Grpc.AspNetCore.Server.GrpcServiceOptions>().Configure<IOptions<OnnxInferenceOptions>>((grpc, inference) =>
            grpc.MaxReceiveMessageSize = (int)Math.Min(inference.Value.MaxRequestBodySize, int.MaxValue));
        return new OnnxInferenceBuilder(services);
    }
}
